// Two daemons (two coordinators, two lease holders) on one database behave like two processes: the
// lease lives in the database, nothing of it in memory. Real processes are in replicas.test.ts.
import { hostname } from 'node:os';
import { sql } from 'kysely';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { recordChecks, type CheckRecord } from '../src/db/history.js';
import { readLease, tryAcquireLease } from '../src/db/lease.js';
import { upsertProvider } from '../src/db/providers.js';
import { findRun, listRuns, openRun } from '../src/db/runs.js';
import { importTokens, listTokens } from '../src/db/tokens.js';
import type { TokenRow } from '../src/db/schema.js';
import { describeEachDialect, freshDatabaseUrl } from './helpers/databases.js';
import { tschk } from './helpers/cli.js';
import { servedDaemon } from './helpers/http.js';
import { startMockFreeApi, type MockFreeApi } from './helpers/mock-free-api.js';
import { waitFor } from './helpers/wait.js';

// No test here waits for a lease to run out (they expire it by hand), so the lease can be long enough
// that a loaded machine's late renewal does not lose it.
const LEASE = { TSCHK_RUN_LEASE_MS: '5000', TSCHK_PROVIDER_CONCURRENCY: '4' };
// A process waiting for another's run looks again every 50 ms, not every third of the lease.
const LOOK = { leasePollMs: 50 };
const secrets = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(3, '0')}-token-aaaa`);

describeEachDialect('one run at a time across processes', (dialect) => {
  let database: Awaited<ReturnType<typeof freshDatabaseUrl>>;
  let mock: MockFreeApi;
  const stops: Array<() => Promise<void>> = [];
  const live = secrets('live', 12);
  const dead = secrets('dead', 12);

  beforeEach(async () => {
    database = await freshDatabaseUrl(dialect);
    mock = await startMockFreeApi({ defaultBehaviour: { kind: 'delay', ms: 40, then: 'dead' } });
    for (const s of live) mock.setBehaviour(s, { kind: 'delay', ms: 40, then: 'live' });
  });
  afterEach(async () => {
    for (const stop of stops.splice(0).reverse()) await stop();
    await mock.close();
    await database.drop();
  });

  /** Process A serves HTTP; B is another process on the same database. */
  const twoProcesses = async (env: Record<string, string> = {}) => {
    const a = await servedDaemon(database.url, { ...LEASE, ...env }, LOOK);
    stops.push(() => a.daemon.stop());
    const b = await servedDaemon(database.url, { ...LEASE, ...env }, LOOK);
    stops.push(() => b.daemon.stop());
    // Two SQLite connections in one thread: one's busy wait for the write lock would hold up, for
    // all of SQLite's 5 s, the very thread whose transaction holds it (two processes do not).
    // A short wait makes it a SQLITE_BUSY that tschk retries, as it does any.
    if (dialect === 'sqlite') for (const d of [a.db, b.db]) await sql`PRAGMA busy_timeout = 20`.execute(d.kysely);
    const deep = await upsertProvider(a.db, { name: 'deep', kind: 'free-api', checkUrl: mock.checkUrl });
    const other = await upsertProvider(a.db, { name: 'other', kind: 'free-api', checkUrl: mock.checkUrl });
    await importTokens(a.db, { providerId: deep.id, pool: 'default', entries: [...live, ...dead], source: 'cli' });
    await importTokens(a.db, { providerId: other.id, pool: 'default', entries: secrets('other', 8), source: 'cli' });
    return { a, b };
  };

  const runsOverlap = async (db: Parameters<typeof listRuns>[0]) => {
    const runs = (await listRuns(db, 100)).map((r) => ({
      start: db.dialect.readTime(r.started_at)!.getTime(),
      end: db.dialect.readTime(r.finished_at)?.getTime() ?? Infinity,
    }));
    return runs.some((r, i) => runs.some((o, j) => i !== j && r.start < o.end && o.start < r.end));
  };

  it("joins another process's run that covers the request instead of checking twice", async () => {
    const { a, b } = await twoProcesses();
    // One of A's checks stays in flight until B has seen the run: on a loaded machine A could
    // otherwise be done before B looks, and B would rightly run on its own.
    let release!: () => void;
    mock.setBehaviour(dead[0]!, { kind: 'held', until: new Promise<void>((r) => (release = r)), then: 'dead' });
    const posted = await a.call('POST', '/api/v1/runs', { body: { force: true } });
    expect(posted.status).toBe(202);
    const waited: Array<{ runId: number | null }> = [];
    const summary = await b.daemon.runNow(
      { trigger: 'cli', force: true },
      {
        onWait: (h) => {
          waited.push(h);
          release();
        },
      },
    );

    expect(waited).toEqual([expect.objectContaining({ runId: posted.json().run_id })]);
    expect(summary.runId).toBe(posted.json().run_id);
    expect(summary).toMatchObject({ status: 'done', checked: 32, live: 12, dead: 20 });
    expect(await listRuns(a.db, 10)).toHaveLength(1);
    expect(mock.calls).toHaveLength(32);
    expect(mock.peak.perToken).toBe(1);
    // One dead answer is not two: nobody is flagged.
    expect((await listTokens(a.db, {})).filter((t) => t.state === 'invalid')).toEqual([]);
  });

  it('waits for a run that does not cover it, then runs: the runs never overlap, no token is asked twice at once', async () => {
    const { a, b } = await twoProcesses();
    const posted = await a.call('POST', '/api/v1/runs', { body: { provider: 'other', force: true } });
    expect(posted.status).toBe(202);
    const waited: Array<{ runId: number | null }> = [];
    const summary = await b.daemon.runNow({ trigger: 'cli', force: true }, { onWait: (h) => waited.push(h) });

    expect(waited).toEqual([expect.objectContaining({ runId: posted.json().run_id, pid: process.pid })]);
    expect(summary.runId).not.toBe(posted.json().run_id);
    expect(summary).toMatchObject({ status: 'done', checked: 32 });
    expect(await runsOverlap(a.db)).toBe(false);
    expect(mock.peak.perToken).toBe(1);
    // Each run asks two providers, four at a time each; two runs at once would make twelve.
    expect(mock.peak.total).toBeLessThanOrEqual(8);
  });

  it('flags a token on two dead answers from two runs, and consecutive_dead counts the dead answers in a row', async () => {
    const { a, b } = await twoProcesses();
    await a.daemon.runNow({ trigger: 'api', force: true });
    await b.daemon.runNow({ trigger: 'cli', provider: 'deep', force: true });
    expect(await listRuns(a.db, 10)).toHaveLength(2);

    const tokens = await listTokens(a.db, {});
    const history = await a.db.kysely.selectFrom('token_status').selectAll().orderBy('id').execute();
    const flagged = tokens.filter((t) => t.state === 'invalid');
    expect(flagged.map((t) => t.secret).sort()).toEqual(dead);
    for (const t of flagged) {
      const deadRuns = history.filter((h) => h.token_id === t.id && h.verdict === 'dead').map((h) => h.run_id);
      expect(new Set(deadRuns).size).toBe(2);
    }
    for (const t of tokens) {
      const mine = history.filter((h) => h.token_id === t.id).map((h) => h.verdict);
      const lastLive = mine.lastIndexOf('live');
      expect(Number(t.consecutive_dead)).toBe(mine.slice(lastLive + 1).filter((v) => v === 'dead').length);
    }
  });

  it('POST /api/v1/runs answers 409 naming the run in flight elsewhere that does not cover it, 202 with its id when it does', async () => {
    const { a, b } = await twoProcesses();
    const running = a.daemon.runNow({ trigger: 'cli', provider: 'other', force: true });
    const lease = await waitFor(async () => (await readLease(a.db, 'run'))?.runId, 5_000, 'A opens its run');

    const refused = await b.call('POST', '/api/v1/runs', { body: { provider: 'deep' } });
    expect(refused.status).toBe(409);
    expect(refused.json().error).toEqual({ code: 'run_in_flight', message: expect.stringContaining(`run ${lease} is in flight`) });
    const joined = await b.call('POST', '/api/v1/runs', { body: { provider: 'other' } });
    expect(joined.status).toBe(202);
    expect(joined.json()).toEqual({ run_id: lease });
    await running;
  });

  it('tschk check --no-wait exits 3 naming the run in flight; tschk status shows it with its progress', async () => {
    const { a } = await twoProcesses();
    // One check stays in flight until the CLI has looked: a loaded machine cannot finish the run first.
    let release!: () => void;
    mock.setBehaviour(dead[0]!, { kind: 'held', until: new Promise<void>((r) => (release = r)), then: 'dead' });
    const running = a.daemon.runNow({ trigger: 'api', provider: 'deep', force: true });
    const runId = await waitFor(async () => (await readLease(a.db, 'run'))?.runId, 5_000, 'A opens its run');
    const env = { TSCHK_DATABASE_URL: database.url, ...LEASE };

    const busy = await tschk(['check', '--provider', 'other', '--no-wait'], env);
    expect(busy.code).toBe(3);
    expect(busy.stderr).toMatch(
      new RegExp(
        `^tschk: run ${runId} \\(deep\\) on \\S+ \\(pid ${process.pid}\\) since \\S+ is in flight and does not cover this check \\(--no-wait\\)\\n$`,
      ),
    );
    const status = await tschk(['status'], env);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(
      new RegExp(`run ${runId} running \\(deep\\) since \\S+ on \\S+ \\(pid ${process.pid}\\): \\d+ checked so far`),
    );
    expect(status.stdout).not.toContain('no run yet');
    release();
    await running;

    const after = await tschk(['check', '--provider', 'other', '--no-wait'], env);
    expect(after.code).toBe(0);
  });

  it("answers a legacy POST sent to B while A runs, from A's verdicts, without asking again", async () => {
    const { a, b } = await twoProcesses({ TokenStatuCheckUrls__DeepTokenCheckUrl: mock.checkUrl });
    const running = a.daemon.runNow({ trigger: 'cron', force: true });
    await waitFor(async () => (await readLease(a.db, 'run'))?.runId, 5_000, 'A opens its run');
    const answer = await b.call('POST', '/api/LLM_TokenCheck/Check/deep');
    await running;

    expect(answer.status).toBe(200);
    expect(answer.json()).toMatchObject({ ServiceName: 'LLM-Deep', totalTokenCount: 24, invalidCount: 12, unknownCount: 0 });
    expect(mock.calls).toHaveLength(32);
  });

  it('takes over from a holder that died: its run is closed as aborted, counted from its history, once the lease expires', async () => {
    const { b } = await twoProcesses();
    const ghost = { id: 'ghost-host:4242:dead', host: 'ghost-host', pid: 4242 };
    expect(await tryAcquireLease(b.db, 'run', ghost, 60_000, { trigger: 'cron' })).toBe(true);
    const orphan = await openRun(b.db, 'cron', 'all');
    const token = (await listTokens(b.db, {}))[0]!;
    await recordChecks(b.db, [checkRecord(token, orphan, 'dead')]);

    const waited: unknown[] = [];
    // The minute of its lease goes by once B is waiting for it.
    const expire = () =>
      b.db.kysely
        .updateTable('run_leases')
        .set({ expires_at: b.db.dialect.clock(-1) })
        .where('name', '=', 'run')
        .execute();
    const summary = await b.daemon.runNow(
      { trigger: 'cli', force: true },
      {
        onWait: (h) => {
          waited.push(h);
          void expire();
        },
      },
    );
    expect(waited).toEqual([expect.objectContaining({ host: 'ghost-host', pid: 4242 })]);
    expect(summary.status).toBe('done');
    expect(await findRun(b.db, orphan)).toMatchObject({ status: 'aborted', error: 'the process running it stopped', checked: 1, dead: 1 });
  });

  it('a run whose lease was taken writes nothing more and leaves the run row to its new holder', async () => {
    const { a } = await twoProcesses();
    mock.setDefault({ kind: 'delay', ms: 150, then: 'dead' });
    const running = a.daemon.runNow({ trigger: 'cli', force: true });
    const runId = await waitFor(async () => (await readLease(a.db, 'run'))?.runId, 5_000, 'A opens its run');
    await waitFor(async () => Number((await findRun(a.db, runId))?.checked ?? 0) > 0, 10_000, 'A writes a batch');
    // Another process found the lease expired, took it and closed the run as aborted.
    await a.db.kysely.updateTable('run_leases').set({ holder: 'thief:1:x', host: 'thief', pid: 1 }).where('name', '=', 'run').execute();
    await a.db.kysely.updateTable('check_runs').set({ status: 'aborted', error: 'taken over' }).where('id', '=', runId).execute();
    const before = Number((await findRun(a.db, runId))!.checked);
    const summary = await running;

    expect(summary.status).toBe('failed');
    expect(summary.error).toMatch(/run lease was lost/);
    const rows = await a.db.kysely.selectFrom('token_status').select('id').where('run_id', '=', runId).execute();
    expect(rows).toHaveLength(before);
    expect(await findRun(a.db, runId)).toMatchObject({ status: 'aborted', error: 'taken over' });
  });

  it('a check written by another run in between is neither overwritten nor lost', async () => {
    const { a } = await twoProcesses();
    const [token] = await listTokens(a.db, {});
    const runA = await openRun(a.db, 'cron', 'all');
    const runB = await openRun(a.db, 'cli', 'all');
    // Both runs read consecutive_dead = 0 and state active, and both got a dead answer.
    await recordChecks(a.db, [checkRecord(token!, runA, 'dead')]);
    await recordChecks(a.db, [checkRecord(token!, runB, 'dead')]);

    const row = (await listTokens(a.db, {})).find((t) => t.id === token!.id)!;
    expect(Number(row.consecutive_dead)).toBe(2);
    expect(row.state).toBe('suspect');
    expect(await findRun(a.db, runA)).toMatchObject({ checked: 1, dead: 1 });
    expect(await findRun(a.db, runB)).toMatchObject({ checked: 1, dead: 1 });
  });
});

function checkRecord(token: TokenRow, runId: number, verdict: 'dead' | 'live'): CheckRecord {
  return {
    runId,
    tokenId: token.id,
    providerId: Number(token.provider_id),
    fingerprint: token.fingerprint,
    checkedAt: new Date(),
    verdict,
    reason: verdict === 'dead' ? 'upstream_rejected' : 'upstream_accepted',
    httpStatus: 200,
    latencyMs: 5,
    balance: null,
    currency: null,
    detail: null,
    prev: { state: 'active', consecutiveDead: 0 },
    next:
      verdict === 'dead'
        ? { state: 'suspect', consecutiveDead: 1, invalidSince: undefined }
        : { state: 'active', consecutiveDead: 0, invalidSince: undefined },
  };
}

describeEachDialect('a second daemon on the same database', (dialect) => {
  it(
    dialect === 'sqlite'
      ? 'warns that another daemon uses the SQLite file and stands by'
      : 'tells that it shares the database with another daemon',
    async () => {
      const database = await freshDatabaseUrl(dialect);
      const a = await servedDaemon(database.url, LEASE);
      const b = await servedDaemon(database.url, LEASE);
      try {
        const line = b.log
          .entries()
          .find((e) => String(e.msg).includes('another tschk daemon') || String(e.msg).includes('other tschk daemons'));
        expect(line).toMatchObject({ level: dialect === 'sqlite' ? 'warn' : 'info', others: [`${hostname()} (pid ${process.pid})`] });
        expect(a.log.entries().some((e) => String(e.msg).includes('tschk daemon'))).toBe(false);
        expect((await b.call('GET', '/healthz')).status).toBe(200);
      } finally {
        await b.daemon.stop();
        await a.daemon.stop();
        await database.drop();
      }
    },
  );
});
