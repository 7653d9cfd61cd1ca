import { realClock } from '../src/engine/limits.js';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Daemon } from '../src/daemon.js';
import { recordChecks, listHistory } from '../src/db/history.js';
import { upsertProvider } from '../src/db/providers.js';
import { importTokens, listTokens } from '../src/db/tokens.js';
import type { RunSummary } from '../src/engine/run.js';
import { createLogger } from '../src/logger.js';
import { describeEachDialect, freshDatabaseUrl } from './helpers/databases.js';
import { CapturedLog, testConfig, testDaemon } from './helpers/daemon.js';
import { startMockFreeApi, type MockFreeApi } from './helpers/mock-free-api.js';
import { liveCheck } from './helpers/checks.js';

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
    const observer = { runFinished: (s: RunSummary) => void finished.push(s) };
    const config = testConfig(database.url, {
      TSCHK_CRON: '* * * * * *', // every second (of the fake clock below)
      TSCHK_RUN_ON_START: 'true',
      TokenStatuCheckUrls__DeepTokenCheckUrl: mock.checkUrl,
    });
    const daemon = await Daemon.create(config, { logger: createLogger('warn', new CapturedLog().stream), observers: [observer] });
    const p = await upsertProvider(daemon.context.db, { name: 'deep', kind: 'free-api', checkUrl: mock.checkUrl });
    await importTokens(daemon.context.db, { providerId: p.id, pool: 'default', entries: ['tok-a-aaaaaaaaaaaa'], source: 'cli' });
    // node-cron's seconds pass on a fake clock; the database and the upstream answer for real between steps.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    try {
      await daemon.start();
      for (let step = 0; finished.length < 3; step++) {
        if (step > 2_000) throw new Error(`only ${finished.length} runs after ${step} steps of the fake clock`);
        await vi.advanceTimersByTimeAsync(100);
        await new Promise((r) => setImmediate(r));
      }
    } finally {
      vi.useRealTimers();
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

describe('the schedule on a fake clock', () => {
  let database: { url: string; drop: () => Promise<void> };
  let ctx: Awaited<ReturnType<typeof testDaemon>> | undefined;
  beforeEach(async () => {
    database = await freshDatabaseUrl('sqlite');
  });
  afterEach(async () => {
    vi.useRealTimers();
    await ctx?.daemon.stop();
    ctx = undefined;
    await database.drop();
  });

  /** Starts the daemon at `now` on a fake clock, then lets the clock run until `until` holds. */
  async function runClock(now: string, until: () => boolean, stepMs = 500, maxSteps = 200) {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    vi.setSystemTime(new Date(now));
    await ctx!.daemon.start();
    for (let step = 0; !until(); step++) {
      if (step >= maxSteps) throw new Error(`not reached after ${(step * stepMs) / 1000} s of the fake clock`);
      await vi.advanceTimersByTimeAsync(stepMs);
      await new Promise((r) => setImmediate(r));
    }
  }
  const logged = (msg: string, job?: string) => ctx!.log.entries().filter((e) => e.msg === msg && (job === undefined || e.job === job));

  it('checks at the hour of TSCHK_CRON in TSCHK_TIMEZONE, not in UTC', async () => {
    const finished: RunSummary[] = [];
    ctx = await testDaemon(
      database.url,
      { TSCHK_CRON: '30 3 * * *', TSCHK_TIMEZONE: 'Asia/Shanghai' },
      { observers: [{ runFinished: (s) => void finished.push(s) }], scheduleClock: realClock },
    );

    // 03:29:58 in Shanghai is 19:29:58 UTC the day before.
    await runClock('2026-12-02T19:29:58.000Z', () => finished.length > 0);

    expect(logged('job scheduled', 'check')[0]).toMatchObject({ cron: '30 3 * * *', next: '2026-12-02T19:30:00.000Z' });
    expect(finished).toHaveLength(1);
    expect(finished[0]).toMatchObject({ trigger: 'cron' });
    expect(Date.parse(finished[0]!.startedAt)).toBeGreaterThanOrEqual(Date.parse('2026-12-02T19:30:00.000Z'));
  });

  it('trims history daily on TSCHK_TRIM_CRON, besides a minute after start-up', async () => {
    ctx = await testDaemon(
      database.url,
      { TSCHK_TRIM_CRON: '15 4 * * *', TSCHK_TIMEZONE: 'UTC', TSCHK_HISTORY_DAYS: '30' },
      { scheduleClock: realClock },
    );
    const p = await upsertProvider(ctx.db, { name: 'deep', kind: 'free-api', checkUrl: 'http://127.0.0.1:1/token/check' });
    await importTokens(ctx.db, { providerId: p.id, pool: 'default', entries: ['tok-a-aaaaaaaaaaaa'], source: 'cli' });
    const [token] = await listTokens(ctx.db, {});
    const trims = () => logged('history trimmed');
    await recordChecks(ctx.db, [liveCheck(token!, p.id, { checkedAt: new Date('2026-10-01T00:00:00Z'), latencyMs: 5 })]);

    // Started at 04:14:58: the 04:15 tick trims first; the start-up pass follows a minute after start.
    await runClock('2026-12-02T04:14:58.000Z', () => trims().length >= 1);
    expect(trims()[0]).toMatchObject({ removed: 1, tick: '2026-12-02T04:15:00.000Z' });
    expect(await listHistory(ctx.db, { limit: 10 })).toEqual([]);
    for (let step = 0; trims().length < 2; step++) {
      if (step >= 200) throw new Error('no start-up pass within 100 s');
      await vi.advanceTimersByTimeAsync(500);
      await new Promise((r) => setImmediate(r));
    }
    expect(trims()[1]).toMatchObject({ removed: 0 });
    expect(trims()[1]!.tick).toBeUndefined();
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
      expect(left.map((h) => Math.round((Date.now() - ctx.db.dialect.readTime(h.checked_at)!.getTime()) / 86_400_000)).sort()).toEqual([
        1, 29,
      ]);
    } finally {
      await ctx.daemon.stop();
      await database.drop();
    }
  });
});
