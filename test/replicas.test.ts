// Replicas on one database: one run per cron tick, one trim per trim tick, one push per run, the same
// truth on every replica (daemons with their own pools and schedule clocks), and a take-over when a
// real `tschk serve` process holding the run is killed.
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Db } from '../src/db/connect.js';
import { migrateToLatest } from '../src/db/migrate.js';
import { upsertProvider } from '../src/db/providers.js';
import { findRun, listRuns } from '../src/db/runs.js';
import { importTokens } from '../src/db/tokens.js';
import { freshDatabaseUrl, testDialects, type Dialect } from './helpers/databases.js';
import { API_SECRET, servedDaemon, type Served } from './helpers/http.js';
import { ManualClock } from './helpers/clock.js';
import { startMockFreeApi } from './helpers/mock-free-api.js';
import { startReceiver } from './helpers/receiver.js';
import { startTschk, type TschkProcess } from './helpers/spawn.js';
import { waitFor } from './helpers/wait.js';

const servers = testDialects().filter((d): d is Exclude<Dialect, 'sqlite'> => d !== 'sqlite');
const tokens = (n: number) => Array.from({ length: n }, (_, i) => `replica-${String(i).padStart(3, '0')}-token-bbbb`);

async function seeded(dialect: Dialect, checkUrl: string, n: number) {
  const database = await freshDatabaseUrl(dialect);
  const db = openDatabase(database.url);
  await migrateToLatest(db);
  const p = await upsertProvider(db, { name: 'deep', kind: 'free-api', checkUrl });
  await importTokens(db, { providerId: p.id, pool: 'default', entries: tokens(n), source: 'cli' });
  return { database, db };
}

function serve(url: string, env: Record<string, string>): TschkProcess {
  return startTschk(['serve'], {
    TSCHK_DATABASE_URL: url,
    TSCHK_HTTP_HOST: '127.0.0.1',
    TSCHK_HTTP_PORT: '0',
    TSCHK_RUN_ON_START: 'false',
    UserAuthorization: API_SECRET,
    LOG_LEVEL: 'info',
    ...env,
  });
}

const listening = async (p: TschkProcess) => String((await p.waitForLog((l) => l.msg === 'HTTP listening', 30_000)).url);

describe.skipIf(servers.length === 0)('replicas of tschk serve', () => {
  it('share a cron of seconds on each server dialect: one run per tick, whichever replica sees it first or late, one push per run, one trim per tick', async () => {
    await Promise.all(
      servers.map(async (dialect) => {
        const mock = await startMockFreeApi({ defaultBehaviour: { kind: 'delay', ms: 20, then: 'live' } });
        const kuma = await startReceiver();
        const { database, db } = await seeded(dialect, mock.checkUrl, 20);
        const env = {
          TSCHK_CRON: '*/3 * * * * *',
          TSCHK_TRIM_CRON: '1-59/3 * * * * *',
          TSCHK_MIN_INTERVAL_S: '0',
          TSCHK_UPTIME_KUMA_PUSH: `deep=${kuma.baseUrl}/api/push/replicas`,
        };
        // Each replica has its own schedule clock, as two hosts do: the test decides which one reaches a tick first.
        const start = Date.parse('2026-12-04T10:00:00.500Z');
        const clocks = [new ManualClock(start), new ManualClock(start)] as const;
        const replicas: Served[] = [];
        try {
          for (const clock of clocks) replicas.push(await servedDaemon(database.url, env, { scheduleClock: clock }));
          const tickDone = (r: Served, job: string, tick: string) =>
            r.log.entries().some((e) => e.msg === 'tick done' && e.job === job && e.tick === tick);
          // Per job: A reaches its first tick and is done before B reaches it; the other way round; both at once.
          const orders = [[[0], [1]], [[1], [0]], [[0, 1]]];
          for (let second = 1; second <= 9; second++) {
            const at = start - 500 + second * 1000;
            const job = second % 3 === 0 ? 'check' : second % 3 === 1 ? 'trim-history' : undefined;
            const tick = new Date(at).toISOString();
            for (const group of job ? orders[Math.floor((second - 1) / 3)]! : [[0, 1]]) {
              for (const i of group) clocks[i]!.moveTo(at);
              if (job) await waitFor(() => group.every((i) => tickDone(replicas[i]!, job, tick)), 20_000, `${dialect}: ${job} ${tick}`);
            }
          }
          const truth = await Promise.all(replicas.map((r) => r.call('GET', '/healthz')));
          const metrics = await Promise.all(replicas.map((r) => r.call('GET', '/metrics')));

          const runs = await listRuns(db, 100);
          const ticksOf = (msg: string) =>
            replicas
              .flatMap((r) =>
                r.log
                  .entries()
                  .filter((l) => l.msg === msg)
                  .map((l) => l.tick),
              )
              .sort();
          expect(ticksOf('run started'), `${dialect}: one run per check tick`).toEqual([
            '2026-12-04T10:00:03.000Z',
            '2026-12-04T10:00:06.000Z',
            '2026-12-04T10:00:09.000Z',
          ]);
          expect(
            runs.map((r) => ({ trigger: r.trigger, status: r.status, checked: Number(r.checked) })),
            dialect,
          ).toEqual(Array(3).fill({ trigger: 'cron', status: 'done', checked: 20 }));
          const perToken = new Map<string, number>();
          for (const c of mock.calls) perToken.set(c.token, (perToken.get(c.token) ?? 0) + 1);
          expect([...perToken.values()], `${dialect}: each token once per run`).toEqual(Array(20).fill(3));
          expect(mock.peak.perToken, dialect).toBe(1);
          expect(kuma.requests, `${dialect}: one push per run`).toHaveLength(3);
          expect(ticksOf('history trimmed'), `${dialect}: one trim per trim tick`).toEqual([
            '2026-12-04T10:00:01.000Z',
            '2026-12-04T10:00:04.000Z',
            '2026-12-04T10:00:07.000Z',
          ]);
          const lastRuns = truth.map((t) => (t.json() as { lastRun: { id: number } }).lastRun.id);
          expect(lastRuns, `${dialect}: /healthz agrees`).toEqual([runs[0]!.id, runs[0]!.id].map(Number));
          for (const m of metrics) expect(m.text).toMatch(/^tschk_last_run_checks\{provider="deep",verdict="live"\} 20$/m);
        } finally {
          for (const r of replicas) await r.daemon.stop();
          await db.close();
          await mock.close();
          await kuma.close();
          await database.drop();
        }
      }),
    );
  }, 90_000);

  it('another replica takes over within twice the lease when the holder is killed mid-run; nothing is lost', async () => {
    const dialect = servers[0]!;
    const mock = await startMockFreeApi({ defaultBehaviour: { kind: 'delay', ms: 30, then: 'live' } });
    const { database, db } = await seeded(dialect, mock.checkUrl, 40);
    const leaseMs = 1000;
    const env = {
      TSCHK_CRON: '0 0 1 1 *',
      TSCHK_RUN_LEASE_MS: String(leaseMs),
      TSCHK_PROVIDER_CONCURRENCY: '2',
      TSCHK_HISTORY_FLUSH_MS: '50',
    };
    const a = serve(database.url, env);
    const b = serve(database.url, env);
    let release = () => {};
    try {
      const [baseA] = await Promise.all([listening(a), listening(b)]);
      const posted = await fetch(`${baseA}/api/v1/runs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${API_SECRET}`, 'content-type': 'application/json' },
        body: '{"force":true}',
      });
      const { run_id: runId } = (await posted.json()) as { run_id: number };
      // A answers a few checks, then its next ones stay in flight: it is mid-run for as long as it lives.
      await waitFor(() => mock.calls.length >= 6, 20_000, 'A checks some tokens', 1);
      mock.setDefault({ kind: 'held', until: new Promise<void>((r) => (release = r)), then: 'live' });
      await waitFor(async () => Number((await findRun(db, runId))?.checked ?? 0) >= 6, 20_000, 'A records some checks');
      a.kill('SIGKILL');
      const killedAt = Date.now();
      await a.exited;
      mock.setDefault('live');

      const takeover = await b.waitForLog((l) => l.msg === 'the process holding the run lease stopped renewing it: taking over', 10_000);
      expect(Date.now() - killedAt).toBeLessThanOrEqual(2 * leaseMs + 1000);
      expect(takeover.runId).toBe(runId);
      await waitFor(
        async () => (await listRuns(db, 10)).some((r) => Number(r.id) !== runId && r.status === 'done'),
        30_000,
        'B finishes the rest',
      );

      const dead = (await findRun(db, runId))!;
      const history = await db.kysely.selectFrom('token_status').select(['token_id', 'run_id', 'verdict']).execute();
      const ofDead = history.filter((h) => Number(h.run_id) === runId);
      expect(dead).toMatchObject({ status: 'aborted', error: 'the process running it stopped' });
      expect(Number(dead.checked)).toBe(ofDead.length);
      expect(ofDead.length).toBeGreaterThanOrEqual(6);
      // Every token was checked once, by A before it died or by B after: none lost, none twice.
      expect(new Set(history.map((h) => Number(h.token_id))).size).toBe(40);
      expect(history.length).toBe(40);
    } finally {
      release();
      a.kill('SIGKILL');
      b.kill('SIGTERM');
      await b.exited;
      await db.close();
      await mock.close();
      await database.drop();
    }
  }, 90_000);
});

describe('a daemon killed mid-run on SQLite', () => {
  let database: Awaited<ReturnType<typeof freshDatabaseUrl>>;
  let db: Db;
  let mock: Awaited<ReturnType<typeof startMockFreeApi>>;
  let release = () => {};
  beforeAll(async () => {
    mock = await startMockFreeApi({ defaultBehaviour: { kind: 'delay', ms: 30, then: 'dead' } });
    ({ database, db } = await seeded('sqlite', mock.checkUrl, 30));
  });
  afterAll(async () => {
    release();
    await db.close();
    await mock.close();
    await database.drop();
  });

  it('the next tschk check waits out the lease, closes the dead run as aborted with its counts, and checks the rest', async () => {
    const lease = { TSCHK_RUN_LEASE_MS: '1000', TSCHK_HISTORY_FLUSH_MS: '50' };
    const a = serve(database.url, { TSCHK_CRON: '0 0 1 1 *', TSCHK_PROVIDER_CONCURRENCY: '2', ...lease });
    let check: TschkProcess | undefined;
    try {
      const base = await listening(a);
      await fetch(`${base}/api/v1/runs`, { method: 'POST', headers: { authorization: `Bearer ${API_SECRET}` } });
      // A answers a few checks, then its next ones stay in flight: it holds the run until it is killed.
      await waitFor(() => mock.calls.length >= 4, 20_000, 'A checks some tokens', 1);
      mock.setDefault({ kind: 'held', until: new Promise<void>((r) => (release = r)), then: 'dead' });
      const running = await waitFor(async () => (await listRuns(db, 1)).find((r) => Number(r.checked) >= 4), 20_000, 'A records checks');

      check = startTschk(['check'], { TSCHK_DATABASE_URL: database.url, TSCHK_PROVIDER_CONCURRENCY: '8', ...lease });
      await waitFor(() => /waiting for run/.test(check!.stderr()), 20_000, 'tschk check waits for the run of A');
      a.kill('SIGKILL');
      await a.exited;
      mock.setDefault('dead');

      const exit = await check.exited;
      expect(exit.code, check.stderr()).toBe(0);
      expect(check.stderr()).toMatch(
        new RegExp(`^tschk: waiting for run ${running.id} \\(all\\) on \\S+ \\(pid ${a.pid}\\) since \\S+$`, 'm'),
      );
      const dead = (await findRun(db, Number(running.id)))!;
      const rows = await db.kysely.selectFrom('token_status').select(['run_id']).execute();
      expect(dead.status).toBe('aborted');
      expect(Number(dead.checked)).toBe(rows.filter((r) => Number(r.run_id) === Number(running.id)).length);
      expect(rows.length).toBe(30);
      const integrity = await sql<{ integrity_check: string }>`PRAGMA integrity_check`.execute(db.kysely);
      expect(integrity.rows[0]?.integrity_check).toBe('ok');
    } finally {
      a.kill('SIGKILL');
      check?.kill('SIGKILL');
    }
  }, 60_000);
});
