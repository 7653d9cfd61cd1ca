import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { listHistory } from '../src/db/history.js';
import { upsertProvider } from '../src/db/providers.js';
import { findRun, openRun } from '../src/db/runs.js';
import { importTokens, listTokens } from '../src/db/tokens.js';
import { openDatabase } from '../src/db/connect.js';
import { migrateToLatest } from '../src/db/migrate.js';
import { describeEachDialect, freshDatabaseUrl } from './helpers/databases.js';
import { testDaemon } from './helpers/daemon.js';
import { startMockFreeApi, type MockFreeApi } from './helpers/mock-free-api.js';
import { TestClock } from './helpers/clock.js';
import { describeSecret } from '../src/secret.js';
import { waitFor } from './helpers/wait.js';

type Ctx = Awaited<ReturnType<typeof testDaemon>>;

async function seed(ctx: Ctx, name: string, checkUrl: string, entries: string[], expect: 'live' | 'dead' | null = null) {
  const p = await upsertProvider(ctx.db, { name, kind: 'free-api', checkUrl });
  await importTokens(ctx.db, { providerId: p.id, pool: 'default', entries, source: 'cli', expect });
  return p;
}

/**
 * A free-api that answers live after `delayMs` and records how many checks were in flight at once;
 * upstreams given one `state` count together.
 */
async function startCountingUpstream(delayMs: number, state = { inFlight: 0, maxInFlight: 0, calls: 0 }) {
  const server: Server = createServer((req, res) => {
    state.inFlight++;
    state.calls++;
    state.maxInFlight = Math.max(state.maxInFlight, state.inFlight);
    req.resume();
    setTimeout(() => {
      state.inFlight--;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"live":true}');
    }, delayMs);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token/check`;
  return {
    url,
    state,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe('a run against an upstream in trouble', () => {
  let mock: MockFreeApi;
  let database: { url: string; drop: () => Promise<void> };
  let ctx: Ctx | undefined;

  beforeEach(async () => {
    mock = await startMockFreeApi();
    database = await freshDatabaseUrl('sqlite');
  });
  afterEach(async () => {
    await ctx?.daemon.stop();
    ctx = undefined;
    await mock.close();
    await database.drop();
  });

  it('retries unknown answers with backoff and records one history row per token', async () => {
    const clock = new TestClock();
    ctx = await testDaemon(database.url, { TSCHK_RETRIES: '2', TSCHK_RETRY_BASE_MS: '1000', TSCHK_PROVIDER_CONCURRENCY: '1' }, { clock });
    mock.setBehaviour('tok-reset-aaaaaaaaaa', 'reset');
    mock.setBehaviour('tok-broken-bbbbbbbb', 'broken_json');
    await seed(ctx, 'deep', mock.checkUrl, ['tok-reset-aaaaaaaaaa', 'tok-broken-bbbbbbbb']);

    const s = await ctx.daemon.runNow({ trigger: 'cli' });

    expect(s).toMatchObject({ checked: 2, unknown: 2, dead: 0 });
    expect(mock.calls.filter((c) => c.token === 'tok-reset-aaaaaaaaaa')).toHaveLength(3);
    expect(mock.calls.filter((c) => c.token === 'tok-broken-bbbbbbbb')).toHaveLength(3);
    // Two back-offs per token, doubling: 1 s then 2 s, each scaled by a jitter in [0.5, 1) and rounded.
    expect(clock.sleeps).toHaveLength(4);
    for (const [i, ms] of clock.sleeps.entries()) {
      const base = i % 2 === 0 ? 1_000 : 2_000;
      expect(ms).toBeGreaterThanOrEqual(base / 2);
      expect(ms).toBeLessThanOrEqual(base);
    }
    const reasons = (await listHistory(ctx.db, { limit: 10 })).map((h) => h.reason).sort();
    expect(reasons).toEqual(['bad_response', 'connection_reset']);
  });

  it('pauses the provider for Retry-After after a 429, then asks again', async () => {
    const clock = new TestClock();
    ctx = await testDaemon(database.url, { TSCHK_RETRIES: '1', TSCHK_PROVIDER_CONCURRENCY: '1' }, { clock });
    mock.setBehaviour('tok-limited-aaaaaaaa', { kind: 'rate_limited', retryAfterS: 7 });
    await seed(ctx, 'deep', mock.checkUrl, ['tok-limited-aaaaaaaa']);

    const s = await ctx.daemon.runNow({ trigger: 'cli' });

    expect(mock.calls.filter((c) => c.token === 'tok-limited-aaaaaaaa')).toHaveLength(2);
    expect(clock.sleeps).toEqual([7_000]);
    expect(s.providers[0]).toMatchObject({ unknown: 1, unreachable: true });
    expect((await listTokens(ctx.db, {}))[0]).toMatchObject({ last_reason: 'rate_limited', state: 'active', consecutive_dead: 0 });
  });

  it('waits out a Retry-After of 120 s, but calls a longer one unknown without waiting', async () => {
    const clock = new TestClock();
    ctx = await testDaemon(database.url, { TSCHK_RETRIES: '1', TSCHK_PROVIDER_CONCURRENCY: '1', TSCHK_SHUTDOWN_GRACE_MS: '0' }, { clock });
    const patient = await upsertProvider(ctx.db, { name: 'patient', kind: 'free-api', checkUrl: mock.checkUrl });
    await importTokens(ctx.db, { providerId: patient.id, pool: 'default', entries: ['tok-wait-120-aaaaaaaa'], source: 'cli' });
    mock.setBehaviour('tok-wait-120-aaaaaaaa', { kind: 'rate_limited', retryAfterS: 120 });

    await ctx.daemon.runNow({ trigger: 'cli', provider: 'patient' });
    expect(mock.calls.map((c) => c.token)).toEqual(['tok-wait-120-aaaaaaaa', 'tok-wait-120-aaaaaaaa']);
    expect(clock.sleeps).toEqual([120_000]);

    const impatient = await upsertProvider(ctx.db, { name: 'impatient', kind: 'free-api', checkUrl: mock.checkUrl });
    await importTokens(ctx.db, { providerId: impatient.id, pool: 'default', entries: ['tok-wait-121-bbbbbbbb'], source: 'cli' });
    mock.setBehaviour('tok-wait-121-bbbbbbbb', { kind: 'rate_limited', retryAfterS: 121 });
    const s = await ctx.daemon.runNow({ trigger: 'cli', provider: 'impatient' });

    expect(mock.calls.filter((c) => c.token === 'tok-wait-121-bbbbbbbb')).toHaveLength(1);
    expect(clock.sleeps).toEqual([120_000]);
    expect(s).toMatchObject({ checked: 1, unknown: 1 });
  });

  it('fails the run, not silently, when its history cannot be written', async () => {
    ctx = await testDaemon(database.url, { TSCHK_PROVIDER_CONCURRENCY: '2', TSCHK_HISTORY_FLUSH_MS: '20' });
    // 40 checks of 10 ms on 2 workers take ~200 ms: the writer's flush every 20 ms fails early
    mock.setDefault({ kind: 'delay', ms: 10, then: 'live' });
    await seed(
      ctx,
      'deep',
      mock.checkUrl,
      Array.from({ length: 40 }, (_, i) => `tok-write-${String(i).padStart(4, '0')}-xxxx`),
    );
    await sql`DROP TABLE history_checks`.execute(ctx.db.kysely);

    const s = await ctx.daemon.runNow({ trigger: 'cli' });

    expect(s.status).toBe('failed');
    expect(s.error).toMatch(/history_checks/);
    // the workers stopped at the failure instead of checking every token regardless
    expect(mock.calls.length).toBeLessThan(40);
  });

  it('asks once, without retries, when the free-api says our request is bad (-2000)', async () => {
    ctx = await testDaemon(database.url, { TSCHK_RETRIES: '2' });
    mock.setBehaviour('tok-badreq-aaaaaaaa', 'bad_request');
    await seed(ctx, 'deep', mock.checkUrl, ['tok-badreq-aaaaaaaa']);

    const s = await ctx.daemon.runNow({ trigger: 'cli' });

    expect(s).toMatchObject({ checked: 1, unknown: 1 });
    expect(mock.calls).toHaveLength(1);
  });

  it('masks a token that an upstream echoes in its error message, in history and logs', async () => {
    ctx = await testDaemon(database.url, { TSCHK_RETRIES: '0' });
    const token = 'tok-echoed-secret-0123456789';
    mock.setBehaviour(token, { kind: 'envelope', code: -2001, message: `请求失败: ${token} is not a valid token, invalid token` });
    await seed(ctx, 'deep', mock.checkUrl, [token]);

    await ctx.daemon.runNow({ trigger: 'cli' });

    const [row] = await listHistory(ctx.db, { limit: 1 });
    expect(row).toMatchObject({ verdict: 'dead', reason: 'upstream_auth_failed' });
    expect(row!.detail).toContain(describeSecret(token).mask);
    expect(row!.detail).not.toContain(token);
    expect(ctx.log.text).not.toContain(token);
  });

  it('calls a provider with nothing due reachable, and warns about nothing', async () => {
    ctx = await testDaemon(database.url);
    await seed(ctx, 'deep', mock.checkUrl, ['tok-fresh-aaaaaaaaa']);
    mock.setDefault('live');
    await ctx.daemon.runNow({ trigger: 'cli' });

    const idle = await ctx.daemon.runNow({ trigger: 'cli' });

    expect(idle.providers[0]).toMatchObject({ checked: 0, unreachable: false });
    expect(ctx.log.text).not.toContain('provider unreachable');
  });

  it('checks each token of a stored T1,T2 line on its own', async () => {
    ctx = await testDaemon(database.url);
    mock.setBehaviour('tok-first-aaaaaaaa', 'live');
    mock.setBehaviour('tok-second-bbbbbbb', 'dead');
    await seed(ctx, 'deep', mock.checkUrl, ['tok-first-aaaaaaaa,tok-second-bbbbbbb']);

    const s = await ctx.daemon.runNow({ trigger: 'cli' });

    expect(s).toMatchObject({ checked: 2, live: 1, dead: 1 });
    expect(mock.calls.map((c) => c.token).sort()).toEqual(['tok-first-aaaaaaaa', 'tok-second-bbbbbbb']);
  });

  it('distrusts the dead verdicts of a provider whose canary disagrees', async () => {
    ctx = await testDaemon(database.url);
    mock.setDefault('dead');
    const p = await seed(ctx, 'deep', mock.checkUrl, ['tok-canary-cccccccc'], 'live');
    await importTokens(ctx.db, { providerId: p.id, pool: 'default', entries: ['tok-one-aaaaaaaaa', 'tok-two-bbbbbbbbb'], source: 'cli' });

    const s = await ctx.daemon.runNow({ trigger: 'cli' });

    expect(s).toMatchObject({ checked: 3, dead: 0, unknown: 3 });
    expect(s.providers[0]!.unreliable).toBe(true);
    expect(mock.calls[0]!.token).toBe('tok-canary-cccccccc');
    for (const t of await listTokens(ctx.db, {})) {
      expect(t).toMatchObject({ last_verdict: 'unknown', last_reason: 'provider_unreliable', consecutive_dead: 0, state: 'active' });
    }
    expect(ctx.log.text).toContain('canary disagrees');
    expect(ctx.log.text).not.toContain('tok-canary-cccccccc');
  });

  it('warns once when every check of a provider is unknown, and judges no token', async () => {
    ctx = await testDaemon(database.url, { TSCHK_RETRIES: '0' });
    mock.setDefault('html_502');
    await seed(ctx, 'deep', mock.checkUrl, ['tok-a-aaaaaaaaaaa', 'tok-b-bbbbbbbbbbb', 'tok-c-ccccccccccc']);

    const s = await ctx.daemon.runNow({ trigger: 'cli' });

    expect(s.providers[0]).toMatchObject({ unreachable: true, unknown: 3 });
    expect(ctx.log.entries().filter((e) => e.msg === 'provider unreachable: every check was unknown, no token judged')).toHaveLength(1);
    expect((await listTokens(ctx.db, {})).map((t) => t.state)).toEqual(['active', 'active', 'active']);
  });
});

describe('concurrency limits', () => {
  let upstreams: Array<Awaited<ReturnType<typeof startCountingUpstream>>> = [];
  let database: { url: string; drop: () => Promise<void> };
  let ctx: Ctx | undefined;
  beforeEach(async () => {
    database = await freshDatabaseUrl('sqlite');
  });
  afterEach(async () => {
    await ctx?.daemon.stop();
    ctx = undefined;
    for (const u of upstreams) await u.close();
    upstreams = [];
    await database.drop();
  });

  const tokens = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-token-${String(i).padStart(4, '0')}`);

  it('never sends a provider more checks at once than its limit', async () => {
    const up = await startCountingUpstream(30);
    upstreams.push(up);
    ctx = await testDaemon(database.url, { TSCHK_PROVIDER_CONCURRENCY: '3', TSCHK_CONCURRENCY: '32' });
    await seed(ctx, 'deep', up.url, tokens('deep', 20));

    expect((await ctx.daemon.runNow({ trigger: 'cli' })).live).toBe(20);
    expect(up.state.maxInFlight).toBe(3);
  });

  it('sends a provider at most its own concurrency, whatever TSCHK_PROVIDER_CONCURRENCY says', async () => {
    const up = await startCountingUpstream(30);
    upstreams.push(up);
    ctx = await testDaemon(database.url, { TSCHK_PROVIDER_CONCURRENCY: '6', TSCHK_CONCURRENCY: '32' });
    const p = await upsertProvider(ctx.db, { name: 'deep', kind: 'free-api', checkUrl: up.url, concurrency: 2 });
    await importTokens(ctx.db, { providerId: p.id, pool: 'default', entries: tokens('deep', 20), source: 'cli' });

    expect((await ctx.daemon.runNow({ trigger: 'cli' })).live).toBe(20);
    expect(up.state.maxInFlight).toBe(2);
  });

  it('holds all providers together under the global limit', async () => {
    // Two origins (undici's pool is per origin) that count together: the peak of all checks at once.
    const both = { inFlight: 0, maxInFlight: 0, calls: 0 };
    const a = await startCountingUpstream(30, both);
    const b = await startCountingUpstream(30, both);
    upstreams.push(a, b);
    ctx = await testDaemon(database.url, { TSCHK_PROVIDER_CONCURRENCY: '4', TSCHK_CONCURRENCY: '5' });
    await seed(ctx, 'deep', a.url, tokens('deep', 20));
    await seed(ctx, 'qwen', b.url, tokens('qwen', 20));

    const s = await ctx.daemon.runNow({ trigger: 'cli' });

    expect(s.live).toBe(40);
    expect(both.maxInFlight).toBe(5);
  });
});

describeEachDialect('run lifecycle', (dialect) => {
  let mock: MockFreeApi;
  let database: { url: string; drop: () => Promise<void> };
  beforeEach(async () => {
    mock = await startMockFreeApi();
    database = await freshDatabaseUrl(dialect);
  });
  afterEach(async () => {
    await mock.close();
    await database.drop();
  });

  it('closes a run left running by a crash as aborted at the next start', async () => {
    const db = openDatabase(database.url);
    await migrateToLatest(db);
    const id = await openRun(db, 'cron', 'all');
    await db.close();

    const ctx = await testDaemon(database.url);
    try {
      expect(await findRun(ctx.db, id)).toMatchObject({ status: 'aborted', error: 'the process running it stopped' });
    } finally {
      await ctx.daemon.stop();
    }
  });

  it('prunes nothing in a run cut short by a stop, even a token confirmed dead before it', async () => {
    const ctx = await testDaemon(database.url, { TSCHK_TIMEOUT_MS: '60000', TSCHK_PROVIDER_CONCURRENCY: '2', TSCHK_PRUNE_AFTER: '1' });
    mock.setDefault('timeout');
    mock.setBehaviour('tok-dead-aaaaaaaaaa', 'dead');
    await seed(ctx, 'deep', mock.checkUrl, ['tok-dead-aaaaaaaaaa', 'tok-hang1-bbbbbbbb', 'tok-hang2-cccccccc']);
    const run = ctx.daemon.runNow({ trigger: 'cli' });
    await waitFor(() => mock.calls.length >= 3, 5_000, 'every check in flight', 10);

    await ctx.daemon.stop(0);
    const summary = await run;

    expect(summary).toMatchObject({ status: 'aborted', dead: 1, pruned: 0 });
    const db = openDatabase(database.url);
    try {
      expect((await listTokens(db, {})).find((t) => t.secret === 'tok-dead-aaaaaaaaaa')).toMatchObject({
        state: 'suspect',
        consecutive_dead: 1,
      });
    } finally {
      await db.close();
    }
  });

  it('on stop, lets the grace period pass, abandons hanging checks and closes the run as aborted', async () => {
    const ctx = await testDaemon(database.url, { TSCHK_TIMEOUT_MS: '60000', TSCHK_PROVIDER_CONCURRENCY: '2' });
    mock.setDefault('timeout');
    mock.setBehaviour('tok-quick-aaaaaaaa', 'live');
    await seed(ctx, 'deep', mock.checkUrl, ['tok-quick-aaaaaaaa', 'tok-hang1-bbbbbbbb', 'tok-hang2-cccccccc', 'tok-never-dddddddd']);
    let summary: Awaited<ReturnType<typeof ctx.daemon.runNow>> | undefined;
    const run = ctx.daemon.runNow({ trigger: 'cli' }).then((s) => (summary = s));
    await waitFor(() => mock.calls.length >= 3, 5_000, 'three checks in flight', 10);

    await ctx.daemon.stop(100);
    await run;

    expect(summary).toMatchObject({ status: 'aborted', checked: 1, live: 1 });
    expect(mock.calls.map((c) => c.token)).not.toContain('tok-never-dddddddd');
    const db = openDatabase(database.url); // the daemon closed its own connection on stop
    try {
      expect(await findRun(db, summary!.runId)).toMatchObject({ status: 'aborted', checked: 1 });
      // abandoned checks are nobody's answer: no history row says anything about those tokens
      expect((await listHistory(db, { limit: 10 })).map((h) => h.verdict)).toEqual(['live']);
    } finally {
      await db.close();
    }
  });
});
