import { getEventListeners } from 'node:events';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpCall } from '../src/checkers/http.js';
import { createLogger } from '../src/logger.js';
import { CapturedLog } from './helpers/daemon.js';
import { startMockFreeApi, type MockFreeApi } from './helpers/mock-free-api.js';

describe('httpCall and the daemon-wide shutdown signal', () => {
  let mock: MockFreeApi;
  const dispatcher = new Agent({ connections: 8 });
  const logger = createLogger('debug', new CapturedLog().stream);
  const post = (token: string, signal: AbortSignal) =>
    httpCall(mock.checkUrl, { method: 'POST', body: JSON.stringify({ token }) }, { dispatcher, timeoutMs: 300, signal, logger });

  beforeAll(async () => {
    mock = await startMockFreeApi({ behaviours: { answers: 'live', hangs: 'timeout', resets: 'reset' } });
  });
  afterAll(async () => {
    await mock.close();
    await dispatcher.close();
  });

  // The daemon's signal lives as long as the process: a check that left a listener on it would leak.
  it('leaves nothing attached to it once a check answered, failed or timed out', async () => {
    const shutdown = new AbortController();
    const outcomes = await Promise.all(['answers', 'hangs', 'resets', 'answers'].map((t) => post(t, shutdown.signal)));

    expect(outcomes.map((o) => (o.ok ? o.status : o.reason))).toEqual([200, 'timeout', 'connection_reset', 200]);
    expect(getEventListeners(shutdown.signal, 'abort')).toHaveLength(0);
  });

  it('abandons a check in flight when it fires, and starts none after', async () => {
    const shutdown = new AbortController();
    const callsBefore = mock.calls.length;
    const inFlight = post('hangs', shutdown.signal);
    while (mock.calls.length === callsBefore) await new Promise((r) => setTimeout(r, 5));
    shutdown.abort();

    expect(await inFlight).toMatchObject({ ok: false, reason: 'aborted' });
    expect(await post('answers', shutdown.signal)).toMatchObject({ ok: false, reason: 'aborted' });
    expect(mock.calls).toHaveLength(callsBefore + 1);
  });
});
