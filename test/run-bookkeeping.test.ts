import { afterEach, beforeEach, expect, it } from 'vitest';
import { upsertProvider } from '../src/db/providers.js';
import { closeRun, listRuns, openRun } from '../src/db/runs.js';
import { importTokens } from '../src/db/tokens.js';
import { describeEachDialect, freshDatabaseUrl } from './helpers/databases.js';
import { servedDaemon, type Served } from './helpers/http.js';
import { startMockFreeApi, type MockFreeApi } from './helpers/mock-free-api.js';

describeEachDialect('runs bookkeeping', (dialect) => {
  let database: Awaited<ReturnType<typeof freshDatabaseUrl>>;
  let mock: MockFreeApi;
  let t: Served;
  beforeEach(async () => {
    database = await freshDatabaseUrl(dialect);
    mock = await startMockFreeApi({ defaultBehaviour: 'live' });
    t = await servedDaemon(database.url, { TokenStatuCheckUrls__DeepTokenCheckUrl: mock.checkUrl, TSCHK_HISTORY_DAYS: '30' });
    const p = await upsertProvider(t.db, { name: 'deep', kind: 'free-api', checkUrl: mock.checkUrl });
    await importTokens(t.db, {
      providerId: p.id,
      pool: 'default',
      entries: ['tok-one-aaaaaaaaaaaa', 'tok-two-bbbbbbbbbbbb'],
      source: 'cli',
    });
  });
  afterEach(async () => {
    await t.daemon.stop();
    await mock.close();
    await database.drop();
  });

  it('a burst of legacy POSTs over fresh verdicts answers from them without writing a run row each', async () => {
    const first = await t.call('POST', '/api/LLM_TokenCheck/Check/deep');
    expect(first.json()).toMatchObject({ totalTokenCount: 2, invalidCount: 0, validTokenPercentage: '100%' });
    const burst = await Promise.all(Array.from({ length: 20 }, () => t.call('POST', '/api/LLM_TokenCheck/Check/deep')));
    expect(burst.map((a) => a.text)).toEqual(Array(20).fill(first.text));
    expect(await listRuns(t.db, 100)).toHaveLength(1);
    expect(mock.calls).toHaveLength(2);
  });

  it('the trim also removes runs older than TSCHK_HISTORY_DAYS, and keeps the recent and the running ones', async () => {
    const daysAgo = (n: number) => new Date(Date.now() - n * 86_400_000);
    const old = await openRun(t.db, 'cron', 'all', daysAgo(41));
    await closeRun(t.db, old, { status: 'done', counts: { pruned: 0, held: 0 } }, daysAgo(40));
    const recent = await openRun(t.db, 'cron', 'all', daysAgo(3));
    await closeRun(t.db, recent, { status: 'done', counts: { pruned: 0, held: 0 } }, daysAgo(3));
    const running = await openRun(t.db, 'cron', 'all', daysAgo(45));

    await t.daemon.trimHistory();
    expect((await listRuns(t.db, 10)).map((r) => Number(r.id)).sort()).toEqual([recent, running].sort());
  });
});
