import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Daemon } from '../src/daemon.js';
import { recordChecks, listHistory } from '../src/db/history.js';
import { upsertProvider } from '../src/db/providers.js';
import { importTokens, listTokens } from '../src/db/tokens.js';
import type { RunSummary } from '../src/engine/run.js';
import { createLogger } from '../src/logger.js';
import { describeEachDialect, freshDatabaseUrl } from './helpers/databases.js';
import { CapturedLog, testConfig, testDaemon } from './helpers/daemon.js';
import { startMockFreeApi, type MockFreeApi } from './helpers/mock-free-api.js';

describe('the schedule', () => {
  let mock: MockFreeApi;
  let database: { url: string; drop: () => Promise<void> };
  beforeEach(async () => {
    mock = await startMockFreeApi({ defaultBehaviour: 'live' });
    database = await freshDatabaseUrl('sqlite');
  });
  afterEach(async () => {
    await mock.close();
    await database.drop();
  });

  it('runs at start-up, then on the cron schedule, one run at a time', async () => {
    const finished: RunSummary[] = [];
    let notify: () => void = () => {};
    const observer = {
      runFinished: (s: RunSummary) => {
        finished.push(s);
        notify();
      },
    };
    const config = testConfig(database.url, {
      TSCHK_CRON: '* * * * * *', // every second
      TSCHK_RUN_ON_START: 'true',
      TokenStatuCheckUrls__DeepTokenCheckUrl: mock.checkUrl,
    });
    const daemon = await Daemon.create(config, { logger: createLogger('warn', new CapturedLog().stream), observers: [observer] });
    const p = await upsertProvider(daemon.context.db, { name: 'deep', kind: 'free-api', checkUrl: mock.checkUrl });
    await importTokens(daemon.context.db, { providerId: p.id, pool: 'default', entries: ['tok-a-aaaaaaaaaaaa'], source: 'cli' });
    const runs = (n: number) =>
      new Promise<void>((resolve) => {
        notify = () => finished.length >= n && resolve();
        notify();
      });
    try {
      await daemon.start();
      await runs(3);
    } finally {
      await daemon.stop();
    }
    expect(finished[0]!.trigger).toBe('startup');
    expect(finished.slice(1).every((s) => s.trigger === 'cron')).toBe(true);
    // the token was due once: later runs respect the minimum interval
    expect(finished.map((s) => s.checked).reduce((a, b) => a + b)).toBe(1);
    // no two runs overlapped
    for (let i = 1; i < finished.length; i++) expect(finished[i]!.startedAt >= finished[i - 1]!.finishedAt).toBe(true);
  });

  it('joins a request that the run in flight already covers', async () => {
    const ctx = await testDaemon(database.url);
    try {
      mock.setDefault({ kind: 'delay', ms: 100, then: 'live' });
      const p = await upsertProvider(ctx.db, { name: 'deep', kind: 'free-api', checkUrl: mock.checkUrl });
      await importTokens(ctx.db, { providerId: p.id, pool: 'default', entries: ['tok-a-aaaaaaaaaaaa'], source: 'cli' });
      const all = ctx.daemon.runNow({ trigger: 'cron' });
      const pool = ctx.daemon.runNow({ trigger: 'api', provider: 'deep', pool: 'default' });
      const [a, b] = await Promise.all([all, pool]);
      expect(b.runId).toBe(a.runId);
      expect(mock.calls).toHaveLength(1);
    } finally {
      await ctx.daemon.stop();
    }
  });
});

describeEachDialect('history retention', (dialect) => {
  it('trims history older than TSCHK_HISTORY_DAYS and keeps the rest', async () => {
    const database = await freshDatabaseUrl(dialect);
    const ctx = await testDaemon(database.url, { TSCHK_HISTORY_DAYS: '30' });
    try {
      const p = await upsertProvider(ctx.db, { name: 'deep', kind: 'free-api', checkUrl: 'http://127.0.0.1:1/token/check' });
      await importTokens(ctx.db, { providerId: p.id, pool: 'default', entries: ['tok-a-aaaaaaaaaaaa'], source: 'cli' });
      const [token] = await listTokens(ctx.db, {});
      const at = (daysAgo: number) => new Date(Date.now() - daysAgo * 86_400_000);
      const record = (daysAgo: number) => ({
        runId: null,
        tokenId: token!.id,
        providerId: p.id,
        fingerprint: token!.fingerprint,
        checkedAt: at(daysAgo),
        verdict: 'live' as const,
        reason: 'upstream_accepted',
        httpStatus: 200,
        latencyMs: 5,
        balance: null,
        currency: null,
        detail: null,
        prev: { state: 'active' as const, consecutiveDead: 0 },
        next: { state: 'active' as const, consecutiveDead: 0, invalidSince: undefined },
      });
      await recordChecks(ctx.db, [record(45), record(31), record(29), record(1)]);

      expect(await ctx.daemon.trimHistory()).toBe(2);

      const left = await listHistory(ctx.db, { limit: 10 });
      expect(left.map((h) => Math.round((Date.now() - ctx.db.dialect.readTime(h.checked_at)!.getTime()) / 86_400_000)).sort()).toEqual([1, 29]);
    } finally {
      await ctx.daemon.stop();
      await database.drop();
    }
  });
});
