import { createHook } from 'node:async_hooks';
import { getEventListeners, once } from 'node:events';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { httpCall } from '../src/checkers/http.js';
import { createLogger } from '../src/logger.js';
import { CapturedLog } from './helpers/daemon.js';
import { startMockFreeApi, type MockFreeApi } from './helpers/mock-free-api.js';
import { waitFor } from './helpers/wait.js';

/** A silent upstream costs the test this much real time; an answer gets the generous default. */
const SILENT_MS = 100;

/**
 * Counts the timers that src/checkers/http.ts itself sets, and those of them that have neither
 * fired nor been cleared: a Timeout's async `destroy` comes when it fires or is cleared.
 */
function exchangeTimers() {
  const pending = new Set<number>();
  let set = 0;
  const hook = createHook({
    init(id, type) {
      if (type !== 'Timeout') return;
      const limit = Error.stackTraceLimit;
      Error.stackTraceLimit = 30;
      const frames = (new Error().stack ?? '').split('\n');
      Error.stackTraceLimit = limit;
      const caller = frames[frames.findIndex((f) => /\bat setTimeout\b/.test(f)) + 1] ?? '';
      if (!caller.includes('src/checkers/http.ts')) return;
      set++;
      pending.add(id);
    },
    destroy(id) {
      pending.delete(id);
    },
  }).enable();
  return {
    set: () => set,
    /** Destroy hooks run from the event loop, after the timer's end: the count waits two turns. */
    pending: async () => {
      for (let i = 0; i < 2; i++) await new Promise((r) => setImmediate(r));
      return pending.size;
    },
    stop: () => void hook.disable(),
  };
}

describe('httpCall and the daemon-wide shutdown signal', () => {
  let mock: MockFreeApi;
  const dispatcher = new Agent({ connections: 8 });
  const logger = createLogger('debug', new CapturedLog().stream);
  const post = (token: string, signal: AbortSignal, timeoutMs = 5_000) =>
    httpCall(mock.checkUrl, { method: 'POST', body: JSON.stringify({ token }) }, { dispatcher, timeoutMs, signal, logger });

  beforeAll(async () => {
    mock = await startMockFreeApi({ behaviours: { answers: 'live', hangs: 'timeout', resets: 'reset' } });
  });
  afterAll(async () => {
    await mock.close();
    await dispatcher.close();
  });

  // The daemon's signal lives as long as the process: a check that left a listener on it would leak.
  it('adds one listener to it however many checks answered, failed or timed out', async () => {
    const shutdown = new AbortController();
    const outcomes = await Promise.all(
      ['answers', 'hangs', 'resets', 'answers'].map((t) => post(t, shutdown.signal, t === 'hangs' ? SILENT_MS : undefined)),
    );

    expect(outcomes.map((o) => (o.ok ? o.status : o.reason))).toEqual([200, 'timeout', 'connection_reset', 200]);
    expect(getEventListeners(shutdown.signal, 'abort')).toHaveLength(1);
    await Promise.all(Array.from({ length: 20 }, () => post('answers', shutdown.signal)));
    expect(getEventListeners(shutdown.signal, 'abort')).toHaveLength(1);
  });

  // Each check's own timer bounds its wait; one left running would keep the check's answer in memory that long.
  it('leaves no timer behind, however a check ended', async () => {
    const timers = exchangeTimers();
    try {
      const shutdown = new AbortController();
      const ended = await Promise.all([
        post('answers', shutdown.signal),
        post('hangs', shutdown.signal, SILENT_MS),
        post('resets', shutdown.signal),
      ]);
      const callsBefore = mock.calls.length;
      const inFlight = post('hangs', shutdown.signal);
      await waitFor(() => mock.calls.length > callsBefore, 5_000, 'the check never reached the upstream', 5);
      shutdown.abort();
      ended.push(await inFlight);

      expect(ended.map((o) => (o.ok ? o.status : o.reason))).toEqual([200, 'timeout', 'connection_reset', 'aborted']);
      expect(timers.set()).toBe(4);
      expect(await timers.pending()).toBe(0);
    } finally {
      timers.stop();
    }
  });

  it('abandons a check in flight when it fires, and starts none after', async () => {
    const shutdown = new AbortController();
    const callsBefore = mock.calls.length;
    const inFlight = post('hangs', shutdown.signal);
    await waitFor(() => mock.calls.length > callsBefore, 5_000, 'the check never reached the upstream', 5);
    shutdown.abort();

    expect(await inFlight).toMatchObject({ ok: false, reason: 'aborted' });
    expect(await post('answers', shutdown.signal)).toMatchObject({ ok: false, reason: 'aborted' });
    expect(mock.calls).toHaveLength(callsBefore + 1);
  });

  it('refuses a check still queued for a connection when it fires: it is never sent', async () => {
    const single = new Agent({ connections: 1 });
    try {
      const shutdown = new AbortController();
      const callsBefore = mock.calls.length;
      const call = (token: string) =>
        httpCall(
          mock.checkUrl,
          { method: 'POST', body: JSON.stringify({ token }) },
          { dispatcher: single, timeoutMs: 5_000, signal: shutdown.signal, logger },
        );
      const first = call('hangs');
      const queued = call('answers');
      await waitFor(() => mock.calls.length > callsBefore, 5_000, 'the check never reached the upstream', 5);
      shutdown.abort();

      expect(await first).toMatchObject({ ok: false, reason: 'aborted' });
      expect(await queued).toMatchObject({ ok: false, reason: 'aborted' });
      await new Promise((r) => setTimeout(r, 50));
      expect(mock.calls.slice(callsBefore).map((c) => c.token)).toEqual(['hangs']);
    } finally {
      await single.destroy();
    }
  });
});

describe('httpCall answers', () => {
  const dispatcher = new Agent({ connections: 2 });
  const logger = createLogger('debug', new CapturedLog().stream);
  afterAll(() => dispatcher.close());

  it('reads at most 256 KiB of an answer and stops reading the rest', async () => {
    const mib = Buffer.alloc(64 * 1024, 'x');
    let written = 0;
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'x-answer': 'big' });
      // 16 MiB, unless the client goes away first.
      const more = () => {
        while (written < 16 * 2 ** 20) {
          written += mib.length;
          if (!res.write(mib)) return void res.once('drain', more);
        }
        res.end();
      };
      more();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/big?x=1`;
      const res = await httpCall(url, { method: 'GET' }, { dispatcher, timeoutMs: 5_000, logger });

      expect(res.ok).toBe(true);
      if (!res.ok) return;
      expect(res.status).toBe(200);
      expect(res.headers['x-answer']).toBe('big');
      expect(res.body.length).toBeGreaterThan(0);
      expect(res.body.length).toBeLessThanOrEqual(256 * 1024);
      expect(res.body).toMatch(/^x+$/);
      await new Promise((r) => setTimeout(r, 50));
      expect(written).toBeLessThan(16 * 2 ** 20);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it('waits for a slow answer whose parts keep coming, each well within the timeout', async () => {
    // The test moves the exchange's clock, so a loaded machine's stalls cannot end the wait: 90 ms
    // go by after each of six parts is read, 540 ms in all, against a 100 ms timeout that only a
    // timer each part starts again lets through.
    const parts = ['{"li', 've"', ':', 'tr', 'ue', '}'];
    let answer: ServerResponse | undefined;
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      answer = res;
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    let read = 0;
    const watched = dispatcher.compose((dispatch) => (opts, handler) => {
      const onResponseData = handler.onResponseData!.bind(handler);
      handler.onResponseData = (controller, chunk) => {
        onResponseData(controller, chunk);
        read++;
      };
      return dispatch(opts, handler);
    });
    /** Turns of the event loop (which the fake clock leaves alone) until `done`, the loopback's pace. */
    const until = async (done: () => boolean, what: string) => {
      for (let turns = 0; !done(); turns++) {
        if (turns > 100_000) throw new Error(`never ${what}`);
        await new Promise((r) => setImmediate(r));
      }
    };
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token/check`;
      let ended = false;
      const call = httpCall(url, { method: 'POST', body: '{"token":"x"}' }, { dispatcher: watched, timeoutMs: 100, logger });
      void call.finally(() => (ended = true));
      await until(() => answer !== undefined, 'asked');
      for (const [i, part] of parts.entries()) {
        if (ended) break;
        answer!.write(part);
        await until(() => read > i || ended, `read part ${i + 1}`);
        vi.advanceTimersByTime(90);
      }
      answer!.end();

      expect(await call).toMatchObject({ ok: true, status: 200, body: '{"live":true}' });
    } finally {
      vi.useRealTimers();
      server.closeAllConnections();
      server.close();
    }
  });

  // TSCHK_TIMEOUT_MS bounds the wait between parts of the body too, not only for the headers.
  it('gives up on an answer whose body stalls after its first chunk', async () => {
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"live":');
      // ... and nothing more, until the test closes the connection.
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token/check`;
      const res = await httpCall(url, { method: 'POST', body: '{"token":"x"}' }, { dispatcher, timeoutMs: SILENT_MS, logger });

      expect(res).toMatchObject({ ok: false, reason: 'timeout', detail: `no answer within ${SILENT_MS} ms` });
    } finally {
      server.closeAllConnections();
      server.close();
    }
  }, 5_000);
});
