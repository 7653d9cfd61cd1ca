import { afterEach, beforeEach, expect, it } from 'vitest';
import { upsertProvider } from '../src/db/providers.js';
import { importTokens, listTokens } from '../src/db/tokens.js';
import { listHistory } from '../src/db/history.js';
import { findRun } from '../src/db/runs.js';
import { describeEachDialect, freshDatabaseUrl } from './helpers/databases.js';
import { startMockFreeApi, type MockFreeApi } from './helpers/mock-free-api.js';
import { testDaemon } from './helpers/daemon.js';

describeEachDialect('a whole run', (dialect) => {
  let mock: MockFreeApi;
  let database: { url: string; drop: () => Promise<void> };
  let ctx: Awaited<ReturnType<typeof testDaemon>>;

  beforeEach(async () => {
    mock = await startMockFreeApi();
    database = await freshDatabaseUrl(dialect);
  });
  afterEach(async () => {
    await ctx?.daemon.stop();
    await mock.close();
    await database.drop();
  });

  it('writes one history row per check and the verdicts of the contract', async () => {
    ctx = await testDaemon(database.url, { TSCHK_PRUNE: 'off', TSCHK_RETRIES: '1' });
    const { db, daemon, log } = ctx;
    const p = await upsertProvider(db, { name: 'deep', kind: 'free-api', checkUrl: mock.checkUrl });
    const tokens = {
      'live-token-aaaa-1111': 'live',
      'dead-token-bbbb-2222': 'dead',
      'auth-token-cccc-3333': 'auth_failed',
      'html-token-dddd-4444': 'html_502',
      'slow-token-eeee-5555': 'reset',
    } as const;
    for (const [t, b] of Object.entries(tokens)) mock.setBehaviour(t, b);
    await importTokens(db, { providerId: p.id, pool: 'default', entries: Object.keys(tokens), source: 'cli' });

    const summary = await daemon.runNow({ trigger: 'cli' });

    expect(summary).toMatchObject({ status: 'done', checked: 5, live: 1, dead: 2, unknown: 2 });
    const byVerdict = Object.fromEntries(
      (await listTokens(db, {})).map((t) => [t.secret, [t.last_verdict, t.last_reason, t.state, t.consecutive_dead]]),
    );
    expect(byVerdict).toEqual({
      'live-token-aaaa-1111': ['live', 'upstream_accepted', 'active', 0],
      'dead-token-bbbb-2222': ['dead', 'upstream_rejected', 'suspect', 1],
      'auth-token-cccc-3333': ['dead', 'upstream_auth_failed', 'suspect', 1],
      'html-token-dddd-4444': ['unknown', 'http_502', 'active', 0],
      'slow-token-eeee-5555': ['unknown', 'connection_reset', 'active', 0],
    });
    expect(await listHistory(db, { limit: 100 })).toHaveLength(5);
    // unknown answers were retried once; the others were asked once
    expect(mock.calls.filter((c) => c.token === 'html-token-dddd-4444')).toHaveLength(2);
    expect(mock.calls.filter((c) => c.token === 'live-token-aaaa-1111')).toHaveLength(1);
    const run = await findRun(db, summary.runId);
    expect(run).toMatchObject({ status: 'done', checked: 5, live: 1, dead: 2, unknown: 2 });
    for (const t of Object.keys(tokens)) expect(log.text).not.toContain(t);
  });

  it('skips tokens checked within the minimum interval unless forced', async () => {
    ctx = await testDaemon(database.url, { TSCHK_PRUNE: 'off' });
    const { db, daemon } = ctx;
    const p = await upsertProvider(db, { name: 'qwen', kind: 'free-api', checkUrl: mock.checkUrl });
    mock.setDefault('live');
    await importTokens(db, { providerId: p.id, pool: 'default', entries: ['t-one-xxxxxxxx', 't-two-yyyyyyyy'], source: 'cli' });

    expect((await daemon.runNow({ trigger: 'cli' })).checked).toBe(2);
    expect((await daemon.runNow({ trigger: 'cli' })).checked).toBe(0);
    expect((await daemon.runNow({ trigger: 'cli', force: true })).checked).toBe(2);
    expect(mock.calls).toHaveLength(4);
  });
});
