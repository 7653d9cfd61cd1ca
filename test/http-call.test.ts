import { getEventListeners, once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpCall } from '../src/checkers/http.js';
import { createLogger } from '../src/logger.js';
import { CapturedLog } from './helpers/daemon.js';
import { startMockFreeApi, type MockFreeApi } from './helpers/mock-free-api.js';
import { waitFor } from './helpers/wait.js';

describe('httpCall and the daemon-wide shutdown signal', () => {
  let mock: MockFreeApi;
  const dispatcher = new Agent({ connections: 8 });
  const logger = createLogger('debug', new CapturedLog().stream);
  const post = (token: string, signal: AbortSignal) =>
    httpCall(mock.checkUrl, { method: 'POST', body: JSON.stringify({ token }) }, { dispatcher, timeoutMs: 100, signal, logger });

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
    const outcomes = await Promise.all(['answers', 'hangs', 'resets', 'answers'].map((t) => post(t, shutdown.signal)));

    expect(outcomes.map((o) => (o.ok ? o.status : o.reason))).toEqual([200, 'timeout', 'connection_reset', 200]);
    expect(getEventListeners(shutdown.signal, 'abort')).toHaveLength(1);
    await Promise.all(Array.from({ length: 20 }, () => post('answers', shutdown.signal)));
    expect(getEventListeners(shutdown.signal, 'abort')).toHaveLength(1);
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
      const res = await httpCall(url, { method: 'POST', body: '{"token":"x"}' }, { dispatcher, timeoutMs: 100, logger });

      expect(res).toMatchObject({ ok: false, reason: 'timeout', detail: 'no answer within 100 ms' });
    } finally {
      server.closeAllConnections();
      server.close();
    }
  }, 5_000);
});
