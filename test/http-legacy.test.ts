import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { findProvider, upsertProvider, type Provider } from '../src/db/providers.js';
import type { Verdict } from '../src/db/schema.js';
import { importTokens } from '../src/db/tokens.js';
import { listRuns } from '../src/db/runs.js';
import { legacyPoolAnswer } from '../src/http/legacy.js';
import { describeEachDialect, freshDatabaseUrl } from './helpers/databases.js';
import { API_SECRET, servedDaemon, type Served } from './helpers/http.js';
import { startMockFreeApi, type Behaviour, type MockFreeApi } from './helpers/mock-free-api.js';
import { waitFor } from './helpers/wait.js';

const v = (...verdicts: Array<Verdict | null>) => verdicts.map((last_verdict) => ({ last_verdict }));

describe('legacyPoolAnswer', () => {
  it.each([
    {
      name: "the contract's example: 4 tokens, the 2nd dead",
      tokens: v('live', 'dead', 'live', 'live'),
      want: {
        ServiceName: 'LLM-Deep',
        tokenStatus: 'tokentrue',
        totalTokenCount: 4,
        invalidCount: 1,
        invalidTokenPositions: [2],
        validTokenPercentage: '75%',
        unknownCount: 0,
        unknownTokenPositions: [],
        message: 'checked 4 tokens: 3 live, 1 dead, 0 unknown',
      },
    },
    {
      name: '3 tokens, 2 live',
      tokens: v('live', 'dead', 'live'),
      want: { tokenStatus: 'tokentrue', validTokenPercentage: '66.67%', invalidTokenPositions: [2] },
    },
    {
      name: '3 tokens, 1 live: below half',
      tokens: v('dead', 'live', 'dead'),
      want: { tokenStatus: 'tokenfalse', validTokenPercentage: '33.33%', invalidCount: 2, invalidTokenPositions: [1, 3] },
    },
    {
      name: 'exactly half live is tokentrue',
      tokens: v('live', 'dead'),
      want: { tokenStatus: 'tokentrue', validTokenPercentage: '50%' },
    },
    {
      name: 'every token live',
      tokens: v('live', 'live', 'live'),
      want: { tokenStatus: 'tokentrue', validTokenPercentage: '100%', invalidTokenPositions: [] },
    },
    {
      name: 'an empty pool',
      tokens: [],
      want: {
        tokenStatus: 'tokenfalse',
        totalTokenCount: 0,
        validTokenPercentage: '0%',
        invalidTokenPositions: [],
        unknownTokenPositions: [],
        message: 'checked 0 tokens: 0 live, 0 dead, 0 unknown',
      },
    },
    {
      name: 'unknown and never-checked tokens are neither valid nor invalid',
      tokens: v('live', 'unknown', 'dead', null),
      want: {
        tokenStatus: 'tokenfalse',
        validTokenPercentage: '25%',
        invalidCount: 1,
        invalidTokenPositions: [3],
        unknownCount: 2,
        unknownTokenPositions: [2, 4],
        message: 'checked 4 tokens: 1 live, 1 dead, 2 unknown',
      },
    },
    {
      name: 'exhausted counts as invalid and is named in the message',
      tokens: v('exhausted', 'live', 'live'),
      want: { invalidCount: 1, invalidTokenPositions: [1], message: 'checked 3 tokens: 2 live, 0 dead, 1 exhausted, 0 unknown' },
    },
    {
      name: 'one token',
      tokens: v('live'),
      want: { validTokenPercentage: '100%', message: 'checked 1 token: 1 live, 0 dead, 0 unknown' },
    },
    {
      name: 'seven tokens, one live: two decimals',
      tokens: v('live', 'dead', 'dead', 'dead', 'dead', 'dead', 'dead'),
      want: { validTokenPercentage: '14.29%', tokenStatus: 'tokenfalse' },
    },
    {
      name: 'eight tokens, one live: trailing zero dropped',
      tokens: v('live', 'dead', 'dead', 'dead', 'dead', 'dead', 'dead', 'dead'),
      want: { validTokenPercentage: '12.5%' },
    },
  ])('$name', ({ tokens, want }) => {
    expect(legacyPoolAnswer('LLM-Deep', tokens)).toMatchObject(want);
  });

  it('keeps the field order of the original answer', () => {
    expect(Object.keys(legacyPoolAnswer('LLM-Deep', []))).toEqual([
      'ServiceName',
      'tokenStatus',
      'totalTokenCount',
      'invalidCount',
      'invalidTokenPositions',
      'validTokenPercentage',
      'unknownCount',
      'unknownTokenPositions',
      'message',
    ]);
  });
});

describeEachDialect('legacy routes', (dialect) => {
  let mock: MockFreeApi;
  let database: { url: string; drop: () => Promise<void> };
  let s: Served;
  let deep: Provider;

  const load = async (provider: Provider, pool: string, tokens: Record<string, Behaviour>) => {
    for (const [t, b] of Object.entries(tokens)) mock.setBehaviour(t, b);
    await importTokens(s.db, { providerId: provider.id, pool, entries: Object.keys(tokens), source: 'cli' });
  };
  const secretsSeen = () => [...mock.calls.map((c) => c.token), API_SECRET];
  const expectNoSecretLeaked = () => {
    for (const secret of new Set(secretsSeen())) {
      for (const a of s.answers) expect(a.text).not.toContain(secret);
      expect(s.log.text).not.toContain(secret);
    }
  };

  beforeEach(async () => {
    mock = await startMockFreeApi();
    database = await freshDatabaseUrl(dialect);
    s = await servedDaemon(database.url, {
      TokenStatuCheckUrls__DeepTokenCheckUrl: mock.checkUrl,
      TokenStatuCheckUrls__QwenTokenCheckUrl: mock.checkUrl,
      TSCHK_RETRIES: '0',
    });
    deep = (await findProvider(s.db, 'deep'))!;
  });
  afterEach(async () => {
    expectNoSecretLeaked();
    await s.daemon.stop();
    await mock.close();
    await database.drop();
  });

  it("answers the contract's example byte for byte: 4 tokens, the 2nd dead", async () => {
    await load(deep, 'default', {
      'deep-token-live-000001': 'live',
      'deep-token-dead-000002': 'dead',
      'deep-token-live-000003': 'live',
      'deep-token-live-000004': 'live',
    });

    const a = await s.call('POST', '/api/LLM_TokenCheck/Check/deep');

    expect(a.status).toBe(200);
    expect(a.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(a.text).toBe(
      '{"ServiceName":"LLM-Deep","tokenStatus":"tokentrue","totalTokenCount":4,"invalidCount":1,' +
        '"invalidTokenPositions":[2],"validTokenPercentage":"75%","unknownCount":0,"unknownTokenPositions":[],' +
        '"message":"checked 4 tokens: 3 live, 1 dead, 0 unknown"}',
    );
    expect(mock.calls).toHaveLength(4);
  });

  it('answers "66.67%" for 3 tokens with 2 live', async () => {
    await load(deep, 'default', { 'deep-a-live-1111': 'live', 'deep-b-live-2222': 'live', 'deep-c-dead-3333': 'dead' });

    const a = await s.call('POST', '/api/LLM_TokenCheck/Check/deep');

    expect(a.json()).toMatchObject({
      tokenStatus: 'tokentrue',
      totalTokenCount: 3,
      invalidTokenPositions: [3],
      validTokenPercentage: '66.67%',
    });
  });

  it('answers an empty pool', async () => {
    const a = await s.call('POST', '/api/LLM_TokenCheck/Check/qwen');

    expect(a.status).toBe(200);
    expect(a.text).toBe(
      '{"ServiceName":"LLM-Qwen","tokenStatus":"tokenfalse","totalTokenCount":0,"invalidCount":0,' +
        '"invalidTokenPositions":[],"validTokenPercentage":"0%","unknownCount":0,"unknownTokenPositions":[],' +
        '"message":"checked 0 tokens: 0 live, 0 dead, 0 unknown"}',
    );
  });

  it('counts an outage as unknown, never as invalid', async () => {
    await load(deep, 'default', {
      'deep-u-live-1111': 'live',
      'deep-u-html-2222': 'html_502',
      'deep-u-dead-3333': 'dead',
      'deep-u-reset-4444': 'reset',
    });

    const a = await s.call('POST', '/api/LLM_TokenCheck/Check/deep');

    expect(a.json()).toEqual({
      ServiceName: 'LLM-Deep',
      tokenStatus: 'tokenfalse',
      totalTokenCount: 4,
      invalidCount: 1,
      invalidTokenPositions: [3],
      validTokenPercentage: '25%',
      unknownCount: 2,
      unknownTokenPositions: [2, 4],
      message: 'checked 4 tokens: 1 live, 1 dead, 2 unknown',
    });
  });

  it('checks the free pool under /free, with the same ServiceName', async () => {
    await load(deep, 'default', { 'deep-default-live-1': 'live' });
    await load(deep, 'free', { 'deep-free-dead-0001': 'dead', 'deep-free-live-0002': 'live' });

    const a = await s.call('POST', '/api/LLM_TokenCheck/Check/deep/free');

    expect(a.json()).toMatchObject({ ServiceName: 'LLM-Deep', totalTokenCount: 2, invalidTokenPositions: [1] });
    expect(mock.calls.map((c) => c.token).sort()).toEqual(['deep-free-dead-0001', 'deep-free-live-0002']);
  });

  it('accepts any configured free-api provider by its name, and the original keys in any letter case', async () => {
    const kimi = await upsertProvider(s.db, { name: 'my-kimi', kind: 'free-api', checkUrl: mock.checkUrl });
    await load(kimi, 'default', { 'kimi-token-live-01': 'live' });

    expect((await s.call('POST', '/api/LLM_TokenCheck/Check/my-kimi')).json()).toMatchObject({
      ServiceName: 'my-kimi',
      totalTokenCount: 1,
      validTokenPercentage: '100%',
    });
    expect((await s.call('POST', '/api/llm_tokencheck/check/DEEP')).json()).toMatchObject({ ServiceName: 'LLM-Deep' });
  });

  it('answers 404 naming the variable for a known service that is not configured, and for an unknown one', async () => {
    const glm = await s.call('POST', '/api/LLM_TokenCheck/Check/glm');
    expect(glm.status).toBe(404);
    expect(glm.json().error.code).toBe('service_not_configured');
    expect(glm.json().error.message).toContain('TokenStatuCheckUrls__GlmTokenCheckUrl');

    const nope = await s.call('POST', '/api/LLM_TokenCheck/Check/nope');
    expect(nope.status).toBe(404);
    expect(nope.json().error.message).toMatch(/unknown service 'nope'; accepted: deep, qwen, hailuo, mita, step, glm, moonshot, spark/);
  });

  it('answers GET with 405 unless ?cached=1, which answers stored verdicts without checking', async () => {
    await load(deep, 'default', { 'deep-c-live-0001': 'live', 'deep-c-dead-0002': 'dead' });

    const plain = await s.call('GET', '/api/LLM_TokenCheck/Check/deep');
    expect(plain.status).toBe(405);
    expect(plain.headers.get('allow')).toBe('POST');

    const before = await s.call('GET', '/api/LLM_TokenCheck/Check/deep?cached=1');
    expect(before.json()).toMatchObject({ totalTokenCount: 2, unknownCount: 2, unknownTokenPositions: [1, 2], tokenStatus: 'tokenfalse' });
    expect(mock.calls).toHaveLength(0);

    await s.call('POST', '/api/LLM_TokenCheck/Check/deep');
    const after = await s.call('GET', '/api/LLM_TokenCheck/Check/deep?cached=1');
    expect(after.json()).toMatchObject({ invalidTokenPositions: [2], unknownCount: 0, validTokenPercentage: '50%' });
    expect(mock.calls).toHaveLength(2);
  });

  it('reuses verdicts fresher than TSCHK_MIN_INTERVAL_S', async () => {
    await load(deep, 'default', { 'deep-f-live-0001': 'live', 'deep-f-dead-0002': 'dead' });

    const first = await s.call('POST', '/api/LLM_TokenCheck/Check/deep');
    const second = await s.call('POST', '/api/LLM_TokenCheck/Check/deep');

    expect(mock.calls).toHaveLength(2);
    expect(second.text).toBe(first.text);
  });

  it('joins a run already in flight instead of checking twice', async () => {
    await load(deep, 'default', {
      'deep-j-live-0001': { kind: 'delay', ms: 100, then: 'live' },
      'deep-j-dead-0002': { kind: 'delay', ms: 100, then: 'dead' },
    });
    const cron = s.daemon.runNow({ trigger: 'cron' });
    await waitFor(() => mock.calls.length > 0, 5_000, 'the check to reach the upstream');

    const a = await s.call('POST', '/api/LLM_TokenCheck/Check/deep');

    const summary = await cron;
    expect(a.json()).toMatchObject({ totalTokenCount: 2, invalidTokenPositions: [2], validTokenPercentage: '50%' });
    expect(mock.calls).toHaveLength(2);
    expect((await listRuns(s.db, 10)).map((r) => Number(r.id))).toEqual([summary.runId]);
  });

  it('answers a check in flight when the daemon stops, instead of cutting the connection', async () => {
    let release!: () => void;
    await load(deep, 'default', { 'deep-s-live-0001': { kind: 'held', until: new Promise<void>((r) => (release = r)), then: 'live' } });
    const pending = s.call('POST', '/api/LLM_TokenCheck/Check/deep');
    await waitFor(() => mock.calls.length > 0, 5_000, 'the check to reach the upstream');

    const stopping = s.daemon.stop();
    release();
    await stopping;

    const a = await pending;
    expect(a.status).toBe(503);
    expect(a.json().error.code).toBe('shutting_down');
    expect(a.headers.get('connection')).toBe('close');
  });

  it('asks for the shared secret', async () => {
    expect((await s.call('POST', '/api/LLM_TokenCheck/Check/deep', { auth: null })).status).toBe(401);
    expect((await s.call('POST', '/api/LLM_TokenCheck/Check/deep', { auth: 'wrong' })).status).toBe(401);
    expect((await s.call('GET', '/api/LLM_TokenCheck/Check/deep?cached=1', { auth: null })).status).toBe(401);
    expect(mock.calls).toHaveLength(0);
  });
});
