import { readFileSync } from 'node:fs';
import { Migrator, sql, type Kysely } from 'kysely';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { migrations } from '../migrations/index.js';
import { README_DAY, README_FINGERPRINT, readmeQueries, TIME_CONDITIONS } from '../bench/readme-queries.js';
import { markRestored } from '../src/db/archive.js';
import { openDatabase, type Db } from '../src/db/connect.js';
import { listTokenEvents, recordHeld } from '../src/db/events.js';
import { countRunVerdicts, listHistory, recordChecks, type CheckRecord } from '../src/db/history.js';
import { migrateToLatest } from '../src/db/migrate.js';
import { upsertProvider } from '../src/db/providers.js';
import { flagTokens } from '../src/db/pruning.js';
import { openRun } from '../src/db/runs.js';
import type { TokenRow, Verdict } from '../src/db/schema.js';
import { archiveAndDeleteTokens, importTokens, listTokens } from '../src/db/tokens.js';
import { createLogger } from '../src/logger.js';
import { keepHistory } from '../src/history-keeper.js';
import { fingerprint } from '../src/secret.js';
import { dailyLiveShare, tokenDays } from '../src/console/queries.js';
import { tschk } from './helpers/cli.js';
import { describeEachDialect, freshDatabaseUrl } from './helpers/databases.js';

const HOUR = 3_600_000;
const DAY = 86_400_000;
const logger = createLogger('silent');

/** The history, as a user reads it through the view, with times as instants. */
async function viewRows(db: Db) {
  const rows = await db.kysely.selectFrom('token_status').selectAll().orderBy('id').execute();
  return rows.map((r) => ({
    id: Number(r.id),
    run_id: r.run_id === null ? null : Number(r.run_id),
    token_id: Number(r.token_id),
    provider_id: Number(r.provider_id),
    fingerprint: r.fingerprint,
    checked_at: db.dialect.readTime(r.checked_at)!.toISOString(),
    checked_ms: Number(r.checked_ms),
    verdict: r.verdict,
    reason: r.reason,
    http_status: r.http_status === null ? null : Number(r.http_status),
    latency_ms: r.latency_ms === null ? null : Number(r.latency_ms),
    balance: r.balance,
    currency: r.currency,
    detail: r.detail,
  }));
}

function check(token: TokenRow, at: Date, verdict: Verdict, extra: Partial<CheckRecord> = {}): CheckRecord {
  return {
    runId: null,
    tokenId: token.id,
    providerId: Number(token.provider_id),
    fingerprint: token.fingerprint,
    checkedAt: at,
    verdict,
    reason:
      verdict === 'live'
        ? 'upstream_accepted'
        : verdict === 'dead'
          ? 'upstream_rejected'
          : verdict === 'exhausted'
            ? 'no_balance'
            : 'timeout',
    httpStatus: verdict === 'unknown' ? null : 200,
    latencyMs: 100,
    balance: null,
    currency: null,
    detail: null,
    prev: { state: 'active', consecutiveDead: 0 },
    next: { state: 'active', consecutiveDead: 0, invalidSince: undefined },
    ...extra,
  };
}

describeEachDialect('history that lasts', (dialect) => {
  let database: { url: string; drop: () => Promise<void> };
  let db: Db;

  beforeEach(async () => {
    database = await freshDatabaseUrl(dialect);
    db = openDatabase(database.url);
  });
  afterEach(async () => {
    await db.close();
    await database.drop();
  });

  const seedTokens = async (secrets: string[]) => {
    const provider = await upsertProvider(db, { name: 'deep', kind: 'free-api', checkUrl: 'http://127.0.0.1:9/token/check' });
    await importTokens(db, { providerId: provider.id, pool: 'default', entries: secrets, source: 'cli' });
    const tokens = new Map((await listTokens(db, {})).map((t) => [t.secret, t]));
    return { provider, tok: (s: string) => tokens.get(s)! };
  };

  it('upgrades a 0.1.0 database in place: every history row is kept with its id, time and values, removed tokens included', async () => {
    const migrator = new Migrator({ db: db.kysely, provider: { getMigrations: async () => migrations } });
    const upTo = await migrator.migrateTo('20261203000000_console');
    expect(upTo.error).toBeUndefined();
    const old = db.kysely as unknown as Kysely<any>;
    const provider = await upsertProvider(db, { name: 'deep', kind: 'free-api', checkUrl: 'http://127.0.0.1:9/token/check' });
    await importTokens(db, {
      providerId: provider.id,
      pool: 'default',
      entries: ['tok-kept-0001-xxxx', 'tok-gone-0002-xxxx'],
      source: 'cli',
    });
    const kept = fingerprint('tok-kept-0001-xxxx');
    const gone = fingerprint('tok-gone-0002-xxxx');
    const [first, second] = (await old.selectFrom('tokens').select('id').orderBy('id').execute()) as Array<{ id: number }>;
    const run = await openRun(db, 'cron', 'all', new Date('2026-11-20T08:00:00.000Z'));
    const t = (iso: string) => db.dialect.time(new Date(iso));
    const legacy = [
      {
        run_id: run,
        token_id: first!.id,
        provider_id: provider.id,
        fingerprint: kept,
        checked_at: t('2026-11-20T08:00:01.123Z'),
        verdict: 'live',
        reason: 'upstream_accepted',
        http_status: 200,
        latency_ms: 812,
        balance: '9.50',
        currency: 'CNY',
        detail: null,
      },
      {
        run_id: run,
        token_id: second!.id,
        provider_id: provider.id,
        fingerprint: gone,
        checked_at: t('2026-11-20T08:00:02.456Z'),
        verdict: 'dead',
        reason: 'upstream_rejected',
        http_status: 200,
        latency_ms: 95,
        balance: null,
        currency: null,
        detail: null,
      },
      {
        run_id: null,
        token_id: second!.id,
        provider_id: provider.id,
        fingerprint: gone,
        checked_at: t('2026-11-21T09:30:00.000Z'),
        verdict: 'unknown',
        reason: 'http_502',
        http_status: 502,
        latency_ms: null,
        balance: null,
        currency: null,
        detail: '上游错误 bad gateway',
      },
      {
        run_id: null,
        token_id: first!.id,
        provider_id: provider.id,
        fingerprint: kept,
        checked_at: t('2026-11-22T10:00:00.000Z'),
        verdict: 'exhausted',
        reason: 'no_balance',
        http_status: 402,
        latency_ms: 40,
        balance: '0.00',
        currency: 'CNY',
        detail: null,
      },
    ];
    for (const row of legacy) await old.insertInto('token_status').values(row).execute();
    // The second token was removed under 0.1.0: archived, its row gone, its history left.
    await old
      .insertInto('token_archive')
      .values({
        token_id: second!.id,
        provider_id: provider.id,
        provider_name: 'deep',
        pool: 'default',
        secret: 'tok-gone-0002-xxxx',
        fingerprint: gone,
        reason: 'user_removed',
        archived_at: t('2026-11-23T00:00:00.000Z'),
      })
      .execute();
    await old.deleteFrom('tokens').where('id', '=', second!.id).execute();
    const before = (await old.selectFrom('token_status').selectAll().orderBy('id').execute()).map((r) => ({
      ...r,
      id: Number(r.id),
      run_id: r.run_id === null ? null : Number(r.run_id),
      token_id: Number(r.token_id),
      provider_id: Number(r.provider_id),
      http_status: r.http_status === null ? null : Number(r.http_status),
      latency_ms: r.latency_ms === null ? null : Number(r.latency_ms),
      checked_at: db.dialect.readTime(r.checked_at)!.toISOString(),
    }));

    await migrateToLatest(db);

    const after = await viewRows(db);
    expect(after.map(({ checked_ms: _, ...r }) => r)).toEqual(before);
    expect(after.map((r) => r.checked_ms)).toEqual(before.map((r) => Date.parse(r.checked_at)));
    // The removed token's history is found by its fingerprint; the run's counts from its rows.
    expect((await listHistory(db, { fingerprint: gone, limit: 10 })).map((h) => h.reason)).toEqual(['http_502', 'upstream_rejected']);
    expect(await countRunVerdicts(db, run)).toEqual({ live: 1, dead: 1, exhausted: 0, unknown: 0 });
    // New checks go on after the old ids.
    const token = (await listTokens(db, {}))[0]!;
    await recordChecks(db, [check(token, new Date('2026-11-24T00:00:00.000Z'), 'live')]);
    expect((await viewRows(db)).map((r) => r.id)).toEqual([...before.map((r) => r.id), Math.max(...before.map((r) => r.id)) + 1]);
  });

  it("answers the README's queries from the token_status view, the daily rollups and the event log", async () => {
    await migrateToLatest(db);
    const { tok } = await seedTokens(['tok-a-0001-xxxx', 'tok-b-0002-xxxx', 'tok-c-0003-xxxx']);
    const now = Date.now();
    const a = tok('tok-a-0001-xxxx');
    const b = tok('tok-b-0002-xxxx');
    await recordChecks(db, [
      check(a, new Date(now - 2 * HOUR), 'dead'),
      check(b, new Date(now - 2 * HOUR), 'dead'),
      check(a, new Date(now - 1 * HOUR), 'dead', { next: { state: 'suspect', consecutiveDead: 1, invalidSince: undefined } }),
      check(b, new Date(now - 3 * DAY), 'dead'),
      check(tok('tok-c-0003-xxxx'), new Date(now - 1 * HOUR), 'live', { balance: '7.25', currency: 'CNY' }),
      check(tok('tok-c-0003-xxxx'), new Date(now - 40 * DAY), 'live', { balance: '9.00', currency: 'CNY' }),
    ]);
    await keepHistory(db, { historyDays: 90, rollupDays: 400, logger });

    const run = (text: string) =>
      sql
        .raw(text)
        .execute(db.kysely)
        .then((r) => r.rows as Array<Record<string, unknown>>);
    const q = readmeQueries(dialect, a.fingerprint, new Date(now - 30 * DAY).toISOString().slice(0, 10));
    expect(
      (await run(q.deadPerProviderLastDay)).map((r) => ({ ...r, dead_checks: Number(r.dead_checks), tokens: Number(r.tokens) })),
    ).toEqual([{ name: 'deep', dead_checks: 3, tokens: 2 }]);
    expect((await run(q.tokenByFingerprint)).map((r) => r.verdict)).toEqual(['dead', 'dead']);
    expect((await run(q.balanceOverTime)).map((r) => r.balance)).toEqual(['7.25']);
    expect((await run(q.liveSharePerPool)).map((r) => Number(r.tokens))).toEqual([3]);
    const daily = await run(q.dailyPerProvider);
    expect(daily.reduce((n, r) => n + Number(r.checks), 0)).toBe(1); // b's check three days ago: the recent days are not rolled up yet
    const bDays = await run(readmeQueries(dialect, b.fingerprint, README_DAY).tokenDays);
    expect(bDays.map((r) => ({ day: r.day, checks: Number(r.checks), dead: Number(r.dead), last_reason: r.last_reason }))).toEqual([
      { day: new Date(now - 3 * DAY).toISOString().slice(0, 10), checks: 1, dead: 1, last_reason: 'upstream_rejected' },
    ]);
    expect((await run(q.tokenEvents)).map((r) => [r.event, r.reason, r.actor])).toEqual([['suspect', 'upstream_rejected', 'run']]);

    // As the README writes them.
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8').replace(/\s+/g, ' ');
    for (const [name, text] of Object.entries(readmeQueries('postgres', README_FINGERPRINT, README_DAY))) {
      expect(readme.includes(text.replace(/\s+/g, ' ')), `README has the query ${name}`).toBe(true);
    }
    for (const conditions of Object.values(TIME_CONDITIONS))
      for (const c of Object.values(conditions)) expect(readme.includes(c), c).toBe(true);
  });

  it('rolls up each finished day per token and removes the raw checks past TSCHK_HISTORY_DAYS; a pass that dies half-way resumes with no day counted twice', async () => {
    await migrateToLatest(db);
    const secrets = Array.from({ length: 5 }, (_, i) => `tok-roll-${i}-xxxx`);
    const { tok } = await seedTokens(secrets);
    const now = new Date('2026-11-30T12:00:00.000Z');
    const records: CheckRecord[] = [];
    for (let d = 1; d <= 6; d++) {
      for (const [i, s] of secrets.entries()) {
        for (let h = 0; h < 3; h++) {
          const at = new Date(Date.UTC(2026, 10, 30 - d, 6 + h * 5, i));
          const verdict: Verdict = (i + h + d) % 4 === 0 ? 'dead' : (i + h) % 5 === 1 ? 'unknown' : 'live';
          records.push(
            check(tok(s), at, verdict, {
              latencyMs: 100 * (h + 1) + i,
              balance: h === 1 ? `${d}.00` : null,
              currency: h === 1 ? 'CNY' : null,
            }),
          );
        }
      }
    }
    for (let i = 0; i < records.length; i += 20) await recordChecks(db, records.slice(i, i + 20));
    const expected = new Map<
      string,
      { checks: number; live: number; dead: number; unknown: number; min: number; max: number; lastBalance: string | null }
    >();
    for (const r of records) {
      const key = `${r.tokenId} ${r.checkedAt.toISOString().slice(0, 10)}`;
      const e = expected.get(key) ?? { checks: 0, live: 0, dead: 0, unknown: 0, min: Infinity, max: 0, lastBalance: null };
      e.checks++;
      if (r.verdict !== 'exhausted') e[r.verdict]++;
      e.min = Math.min(e.min, r.latencyMs!);
      e.max = Math.max(e.max, r.latencyMs!);
      e.lastBalance = r.balance ?? e.lastBalance;
      expected.set(key, e);
    }
    const daily = async () =>
      new Map(
        (await db.kysely.selectFrom('token_daily').selectAll().execute()).map((d) => [
          `${d.token_id} ${d.day}`,
          {
            checks: Number(d.checks),
            live: Number(d.live),
            dead: Number(d.dead),
            unknown: Number(d.unknown),
            min: Number(d.latency_min_ms),
            max: Number(d.latency_max_ms),
            lastBalance: d.last_balance,
          },
        ]),
      );

    // One token a step, and the process "dies" after the seventh step.
    let steps = 0;
    const crash = new Error('killed');
    const opts = { historyDays: 3, rollupDays: 400, logger, now: () => now, firstStepSize: 1, stepMs: 0.001 };
    await expect(
      keepHistory(db, {
        ...opts,
        afterStep: () => {
          if (++steps === 7) throw crash;
        },
      }),
    ).rejects.toBe(crash);
    expect((await daily()).size).toBe(7);
    await keepHistory(db, opts);

    expect(await daily()).toEqual(expected);
    const left = await viewRows(db);
    expect(Math.min(...left.map((r) => r.checked_ms))).toBeGreaterThanOrEqual(now.getTime() - 3 * DAY);
    expect(left).toHaveLength(records.filter((r) => r.checkedAt.getTime() >= now.getTime() - 3 * DAY).length);
    // A pass with nothing new to do changes nothing.
    await keepHistory(db, opts);
    expect(await daily()).toEqual(expected);
  });

  it("the console's 30-day live share and a token's days read the same from the rollups as they did from the raw checks", async () => {
    await migrateToLatest(db);
    const secrets = Array.from({ length: 4 }, (_, i) => `tok-share-${i}-xxxx`);
    const { tok } = await seedTokens(secrets);
    // Noon (UTC) of today: the checks of each day stay on that day.
    const now = new Date(Math.floor(Date.now() / DAY) * DAY + 12 * HOUR);
    const records: CheckRecord[] = [];
    for (let d = 0; d < 6; d++) {
      for (const [i, s] of secrets.entries()) {
        records.push(
          check(tok(s), new Date(now.getTime() - d * DAY - (i + 1) * 60_000), (i + d) % 3 === 0 ? 'dead' : 'live', {
            latencyMs: 50 + d * 10 + i,
            balance: d % 2 ? `${d}.5` : null,
            currency: d % 2 ? 'CNY' : null,
          }),
        );
      }
    }
    await recordChecks(db, records);
    const before = await dailyLiveShare(db, { days: 30, now });
    const daysBefore = await tokenDays(db, tok(secrets[1]!).id, 30, now);
    await keepHistory(db, { historyDays: 2, rollupDays: 400, logger, now: () => now });
    expect(await db.kysely.selectFrom('token_daily').select('day').execute()).not.toHaveLength(0);
    expect(await dailyLiveShare(db, { days: 30, now })).toEqual(before);
    expect(await tokenDays(db, tok(secrets[1]!).id, 30, now)).toEqual(daysBefore);
    expect(daysBefore).toHaveLength(6);
    expect([...before.values()][0]!.reduce((n, d) => n + d.checks, 0)).toBe(records.length);
  });

  it('keeps rollups and events TSCHK_ROLLUP_DAYS, then removes them', async () => {
    await migrateToLatest(db);
    const { tok } = await seedTokens(['tok-old-0001-xxxx']);
    const token = tok('tok-old-0001-xxxx');
    const now = new Date('2026-11-30T12:00:00.000Z');
    await recordChecks(db, [
      check(token, new Date('2026-11-10T12:00:00.000Z'), 'dead', {
        next: { state: 'suspect', consecutiveDead: 1, invalidSince: undefined },
      }),
    ]);
    await recordChecks(db, [
      check(token, new Date('2026-11-25T12:00:00.000Z'), 'live', {
        prev: { state: 'suspect', consecutiveDead: 1 },
        next: { state: 'active', consecutiveDead: 0, invalidSince: undefined },
      }),
    ]);
    await keepHistory(db, { historyDays: 1, rollupDays: 400, logger, now: () => now });
    expect((await listTokenEvents(db, { tokenId: token.id })).map((e) => e.event)).toEqual(['recovered', 'suspect']);
    expect((await db.kysely.selectFrom('token_daily').select('day').orderBy('day').execute()).map((d) => d.day)).toEqual([
      '2026-11-10',
      '2026-11-25',
    ]);
    expect(await listHistory(db, { limit: 10 })).toEqual([]);

    await keepHistory(db, { historyDays: 1, rollupDays: 10, logger, now: () => now });
    expect((await db.kysely.selectFrom('token_daily').select('day').execute()).map((d) => d.day)).toEqual(['2026-11-25']);
    expect((await listTokenEvents(db, { tokenId: token.id })).map((e) => e.event)).toEqual(['recovered']);
  });

  it('logs each state change of a token with its run and reason, and tschk history --token finds a removed token by its fingerprint', async () => {
    await migrateToLatest(db);
    const { provider, tok } = await seedTokens(['tok-life-0001-xxxx']);
    const token = tok('tok-life-0001-xxxx');
    const r1 = await openRun(db, 'cron', 'all');
    const r2 = await openRun(db, 'cron', 'all');
    const at = Date.now() - HOUR;
    await recordChecks(db, [
      check(token, new Date(at), 'dead', { runId: r1, next: { state: 'suspect', consecutiveDead: 1, invalidSince: undefined } }),
    ]);
    expect(await recordHeld(db, [token], { reason: 'breaker: 80% dead in one run', runId: r1 })).toBe(1);
    expect(await recordHeld(db, [token], { reason: 'breaker: 80% dead in one run', runId: r1 })).toBe(0);
    await recordChecks(db, [
      check(token, new Date(at + 1000), 'dead', {
        runId: r2,
        prev: { state: 'suspect', consecutiveDead: 1 },
        next: { state: 'suspect', consecutiveDead: 2, invalidSince: undefined },
      }),
    ]);
    await flagTokens(db, [token.id], new Date(at + 2000), { runId: r2 });
    const flagged = (await listTokens(db, {}))[0]!;
    await archiveAndDeleteTokens(db, [flagged], provider.name, 'pruned', new Date(), { runId: r2 });
    const archived = await db.kysely.selectFrom('token_archive').select('id').execute();
    await markRestored(
      db,
      archived.map((a) => Number(a.id)),
      new Date(),
      'cli',
    );

    const events = (await listTokenEvents(db, { fingerprint: token.fingerprint })).reverse();
    expect(
      events.map((e) => ({ event: e.event, run: e.run_id === null ? null : Number(e.run_id), reason: e.reason, actor: e.actor })),
    ).toEqual([
      { event: 'suspect', run: r1, reason: 'upstream_rejected', actor: 'run' },
      { event: 'held', run: r1, reason: 'breaker: 80% dead in one run', actor: 'run' },
      { event: 'invalid', run: r2, reason: 'confirmed_dead', actor: 'run' },
      { event: 'pruned', run: r2, reason: 'upstream_rejected', actor: 'run' },
      { event: 'restored', run: null, reason: 'archived as pruned', actor: 'cli' },
    ]);

    // The token is gone from `tokens`; its history is not.
    await db.kysely.deleteFrom('tokens').execute();
    const out = await tschk(['history', '--token', token.fingerprint, '--json'], { TSCHK_DATABASE_URL: database.url, LOG_LEVEL: 'silent' });
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    expect((JSON.parse(out.stdout) as Array<{ verdict: string; fingerprint: string }>).map((h) => [h.verdict, h.fingerprint])).toEqual([
      ['dead', token.fingerprint],
      ['dead', token.fingerprint],
    ]);
    expect(out.stdout).not.toContain('tok-life-0001-xxxx');
    const unknown = await tschk(['history', '--token', 'ffffffffffff'], { TSCHK_DATABASE_URL: database.url, LOG_LEVEL: 'silent' });
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/no token 'ffffffffffff'/);
  });
});
