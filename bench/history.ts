// History benchmark: `npm run bench` (or `npm run build && node dist/bench/history.js`).
// Writes BENCH_HISTORY_ROWS checks (default 3,000,000) of BENCH_HISTORY_TOKENS tokens (10,000),
// one check of every token an hour, through the same code a run writes with, into a fresh
// database (SQLite, or BENCH_HISTORY_DATABASE_URL), and prints one JSON line: bytes per check,
// the longest event-loop stall and the slowest /healthz during the rollup pass and during a
// retention pass that removes two thirds of the rows, the latency of the README's queries and of
// the API answers, and the start-up time to the first /healthz.
// Seeding 20M rows takes long: BENCH_HISTORY_KEEP_SEED=FILE keeps a copy of the seeded SQLite file
// (and FILE.json beside it), and BENCH_HISTORY_SEED_FROM=FILE measures a copy of it instead of seeding.
import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { sql } from 'kysely';
import { runCli } from '../src/cli.js';
import { loadConfig } from '../src/config.js';
import { Daemon } from '../src/daemon.js';
import { openDatabase, type Db } from '../src/db/connect.js';
import { recordChecks, type CheckRecord } from '../src/db/history.js';
import { migrateToLatest } from '../src/db/migrate.js';
import { upsertProvider } from '../src/db/providers.js';
import { closeRun, openRun } from '../src/db/runs.js';
import { archiveAndDeleteTokens, importTokens, listTokens } from '../src/db/tokens.js';
import type { Verdict } from '../src/db/schema.js';
import { createLogger } from '../src/logger.js';
import { readmeQueries } from './readme-queries.js';

const ROWS = Number(process.env.BENCH_HISTORY_ROWS ?? 3_000_000);
const TOKENS = Number(process.env.BENCH_HISTORY_TOKENS ?? 10_000);
const SECRET = 'bench-history-secret';
const HOUR = 3_600_000;
const DAY = 86_400_000;
const REPEAT = 7;

const round = (v: number, digits = 1) => Number(v.toFixed(digits));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** One check as the free-api checker writes it: mostly live, some dead, a few unknown with a message. */
function check(t: { id: number; fingerprint: string }, providerId: number, runId: number, at: Date, i: number): CheckRecord {
  const k = (t.id * 7919 + i * 104729) % 100;
  const verdict: Verdict = k < 85 ? 'live' : k < 95 ? 'dead' : 'unknown';
  return {
    runId,
    tokenId: t.id,
    providerId,
    fingerprint: t.fingerprint,
    checkedAt: at,
    verdict,
    reason: verdict === 'live' ? 'upstream_accepted' : verdict === 'dead' ? 'upstream_rejected' : k < 98 ? 'timeout' : 'upstream_error',
    httpStatus: verdict === 'unknown' && k < 98 ? null : 200,
    latencyMs: 200 + ((t.id * 31 + i * 17) % 2500),
    balance: null,
    currency: null,
    detail: verdict === 'unknown' && k >= 98 ? 'upstream said: rate limited, try again later' : null,
    prev: { state: 'active', consecutiveDead: 0 },
    next: { state: 'active', consecutiveDead: 0, invalidSince: undefined },
  };
}

async function seed(db: Db, now: number): Promise<{ providerId: number; spanDays: number }> {
  const provider = await upsertProvider(db, { name: 'deep', kind: 'free-api', checkUrl: 'http://127.0.0.1:9/token/check' });
  const entries = Array.from({ length: TOKENS }, (_, i) => `sk-bench-${String(i).padStart(7, '0')}-${'x'.repeat(24)}`);
  await importTokens(db, { providerId: provider.id, pool: 'default', entries, source: 'cli' });
  const tokens = await listTokens(db, { providerId: provider.id });
  const hours = Math.ceil(ROWS / tokens.length);
  const began = performance.now();
  let written = 0;
  for (let h = hours; h >= 1 && written < ROWS; h--) {
    const start = new Date(now - h * HOUR);
    const runId = await openRun(db, 'cron', 'all', start);
    for (let i = 0; i < tokens.length && written < ROWS; i += 500) {
      const batch = tokens.slice(i, Math.min(i + 500, i + ROWS - written));
      await recordChecks(
        db,
        batch.map((t, j) => check(t, provider.id, runId, new Date(start.getTime() + (i + j) * 10), h)),
      );
      written += batch.length;
    }
    await closeRun(db, runId, { status: 'done', counts: { pruned: 0, held: 0 } }, new Date(start.getTime() + 60_000));
    if (h % 24 === 0)
      process.stderr.write(`bench history: ${written} rows written (${round((written / (performance.now() - began)) * 1000, 0)}/s)\n`);
  }
  return { providerId: provider.id, spanDays: hours / 24 };
}

/** Bytes of `history_checks` and its index, as the database counts them. */
async function historyBytes(db: Db): Promise<number> {
  switch (db.dialect.name) {
    case 'sqlite': {
      const r = await sql<{
        bytes: number;
      }>`SELECT sum(pgsize) AS bytes FROM dbstat WHERE name IN ('history_checks', 'history_checks_at')`.execute(db.kysely);
      return Number(r.rows[0]?.bytes ?? 0);
    }
    case 'postgres': {
      await sql`VACUUM ANALYZE history_checks`.execute(db.kysely);
      const r = await sql<{ bytes: string }>`SELECT pg_total_relation_size('history_checks') AS bytes`.execute(db.kysely);
      return Number(r.rows[0]?.bytes ?? 0);
    }
    case 'mysql': {
      await sql`ANALYZE TABLE history_checks`.execute(db.kysely);
      const r = await sql<{
        bytes: number;
      }>`SELECT data_length + index_length AS bytes FROM information_schema.tables WHERE table_schema = database() AND table_name = 'history_checks'`.execute(
        db.kysely,
      );
      return Number(r.rows[0]?.bytes ?? 0);
    }
  }
}

async function countChecks(db: Db): Promise<number> {
  const r = await db.kysely
    .selectFrom('history_checks')
    .select((eb) => eb.fn.countAll().as('n'))
    .executeTakeFirstOrThrow();
  return Number(r.n);
}

async function time<T>(fn: () => Promise<T>): Promise<number> {
  await fn();
  const took: number[] = [];
  for (let i = 0; i < REPEAT; i++) {
    const began = performance.now();
    await fn();
    took.push(performance.now() - began);
  }
  return round(median(took));
}

async function cli(args: string[], env: Record<string, string>): Promise<string> {
  const out = new PassThrough();
  let stdout = '';
  out.on('data', (c) => (stdout += String(c)));
  const code = await runCli(args, {
    env,
    stdout: out,
    stderr: new PassThrough(),
    stdin: Readable.from(['']),
    shutdownRequested: new Promise(() => {}),
  });
  if (code !== 0) throw new Error(`tschk ${args.join(' ')} exited ${code}`);
  return stdout;
}

/**
 * While `fn` runs: the longest event-loop stall, the slowest of /healthz asked every 20 ms and, when
 * `write` is given, the slowest of a run's batches of checks written every 50 ms beside it.
 */
async function watched<T>(
  base: string,
  fn: () => Promise<T>,
  write?: () => Promise<void>,
): Promise<{ result: T; maxStallMs: number; maxHealthzMs: number; maxRunWriteMs?: number; durationS: number }> {
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  let maxHealthzMs = 0;
  let done = false;
  const prober = (async () => {
    while (!done) {
      const began = performance.now();
      const res = await fetch(`${base}/healthz`).catch(() => fetch(`${base}/healthz`));
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`/healthz answered ${res.status}`);
      maxHealthzMs = Math.max(maxHealthzMs, performance.now() - began);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  let maxRunWriteMs = 0;
  let runWriteErrors = 0;
  const writer = (async () => {
    while (write && !done) {
      const began = performance.now();
      await write().catch(() => runWriteErrors++);
      maxRunWriteMs = Math.max(maxRunWriteMs, performance.now() - began);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  const began = performance.now();
  const result = await fn();
  const durationS = (performance.now() - began) / 1000;
  done = true;
  await Promise.all([prober, writer]);
  loop.disable();
  return {
    result,
    maxStallMs: round(loop.max / 1e6),
    maxHealthzMs: round(maxHealthzMs),
    ...(write ? { maxRunWriteMs: round(maxRunWriteMs), runWriteErrors } : {}),
    durationS: round(durationS),
  };
}

/**
 * A run's writes during a pass: a batch of 100 checks of the current hour, through the daemon's
 * own database handle (a pool of connections on the servers, so beside the pass's transaction).
 */
async function withRunWrites<T>(db: Db, pass: (write: () => Promise<void>) => Promise<T>): Promise<T> {
  const tokens = await listTokens(db, { limit: 100 });
  const began = new Date();
  const runId = await openRun(db, 'cron', 'all', began);
  let i = 0;
  try {
    return await pass(() =>
      recordChecks(
        db,
        tokens.map((t) => check(t, t.provider_id, runId, new Date(), i++)),
      ),
    );
  } finally {
    await closeRun(db, runId, { status: 'done', counts: { pruned: 0, held: 0 } });
    // 2,000 checks a second over a pass of minutes would otherwise swell the last day the queries read.
    await db.kysely.deleteFrom('history_checks').where('run_id', '=', runId).where('at', '>=', db.dialect.historyTime(began)).execute();
  }
}

/** A fresh `tschk serve` process: milliseconds from spawn to the first 200 of /healthz. */
async function coldStart(env: Record<string, string>): Promise<number> {
  const port = 30_000 + Math.floor(Math.random() * 20_000);
  const began = performance.now();
  const child = spawn(process.execPath, [new URL('../src/main.js', import.meta.url).pathname, 'serve'], {
    env: { ...process.env, ...env, TSCHK_HTTP_PORT: String(port), TSCHK_HTTP_HOST: '127.0.0.1' },
    stdio: 'ignore',
  });
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`tschk serve exited ${child.exitCode}`);
      try {
        const res = await fetch(`http://127.0.0.1:${port}/healthz`);
        await res.arrayBuffer();
        if (res.status === 200) return round(performance.now() - began);
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  } finally {
    child.kill('SIGKILL');
  }
}

/** The longest event-loop stall while nothing of ours runs: what the machine itself adds. */
async function idleStall(ms: number): Promise<number> {
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  await new Promise((r) => setTimeout(r, ms));
  loop.disable();
  return round(loop.max / 1e6);
}

interface Seeded {
  /** When the rows were written, up to the hour before (ms). */
  seededAt: number;
  spanDays: number;
  seedS: number;
  rows: number;
  bytesPerCheck: number;
  removedToken: { fingerprint: string };
  someToken: { id: number };
}

/** A database with ROWS checks and one removed token: seeded here, or copied from BENCH_HISTORY_SEED_FROM. */
async function seededDatabase(url: string): Promise<Seeded> {
  const from = process.env.BENCH_HISTORY_SEED_FROM;
  const file = url.startsWith('sqlite:') ? url.slice('sqlite:'.length) : undefined;
  if (from) {
    if (!file) throw new Error('BENCH_HISTORY_SEED_FROM works with SQLite only');
    process.stderr.write(`bench history: copying the seeded ${from}…\n`);
    copyFileSync(from, file);
    return JSON.parse(readFileSync(`${from}.json`, 'utf8')) as Seeded;
  }
  const db = openDatabase(url);
  await migrateToLatest(db);
  process.stderr.write(`bench history: writing ${ROWS} checks of ${TOKENS} tokens, one an hour…\n`);
  const seedBegan = performance.now();
  const seededAt = Date.now();
  const { spanDays } = await seed(db, seededAt);
  const seedS = round((performance.now() - seedBegan) / 1000);
  const rows = await countChecks(db);
  const bytesPerCheck = round((await historyBytes(db)) / rows);
  const removed = (await listTokens(db, { limit: 1 }))[0]!;
  await archiveAndDeleteTokens(db, [removed], 'deep', 'user_removed');
  const some = (await listTokens(db, { limit: 1 }))[0]!;
  const out: Seeded = {
    seededAt,
    spanDays,
    seedS,
    rows,
    bytesPerCheck,
    removedToken: { fingerprint: removed.fingerprint },
    someToken: { id: some.id },
  };
  const keep = process.env.BENCH_HISTORY_KEEP_SEED;
  if (keep && file) {
    await sql`PRAGMA wal_checkpoint(TRUNCATE)`.execute(db.kysely);
    await db.close();
    copyFileSync(file, keep);
    writeFileSync(`${keep}.json`, JSON.stringify(out));
  } else {
    await db.close();
  }
  return out;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'tschk-bench-history-'));
  const url = process.env.BENCH_HISTORY_DATABASE_URL ?? `sqlite:${join(dir, 'tschk.db')}`;
  const env = (historyDays: number): Record<string, string> => ({
    TSCHK_DATABASE_URL: url,
    TSCHK_HTTP_PORT: '0',
    TSCHK_HTTP_HOST: '127.0.0.1',
    TSCHK_RUN_ON_START: 'false',
    TSCHK_CRON: '0 0 1 1 *',
    TSCHK_HISTORY_DAYS: String(historyDays),
    TokenStatuCheckUrls__DeepTokenCheckUrl: 'http://127.0.0.1:9/token/check',
    UserAuthorization: SECRET,
    LOG_LEVEL: 'warn',
  });
  try {
    const seeded = await seededDatabase(url);
    const { spanDays, seedS, rows, bytesPerCheck, removedToken, someToken } = seeded;
    // A copied seed is older than the clock: its last day of checks is that much further back.
    const seedAgeH = round((Date.now() - (seeded.seededAt ?? Date.now())) / 3_600_000);

    process.stderr.write('bench history: start-up of a fresh process…\n');
    // Killed as soon as it answers: its trim lease expires after a second, and the next pass resumes what it began.
    const coldStartMs = await coldStart({ ...env(3650), TSCHK_RUN_LEASE_MS: '1000' });
    await new Promise((r) => setTimeout(r, 1_500));

    process.stderr.write('bench history: rollup pass…\n');
    const a = await Daemon.create(loadConfig(env(3650)), { logger: createLogger('warn') });
    const startBegan = performance.now();
    await a.start();
    const base = a.httpAddress!.url;
    await (await fetch(`${base}/healthz`)).arrayBuffer();
    const startToHealthzMs = round(performance.now() - startBegan);
    const rollup = {
      ...(await withRunWrites(a.context.db, (write) => watched(base, () => a.trimHistory(), write))),
      longestStepMs: round(a.lastHistoryPass?.longestStepMs ?? 0),
      longestStepKind: a.lastHistoryPass?.longestStepKind,
      steps: a.lastHistoryPass?.steps,
    };

    process.stderr.write('bench history: queries…\n');
    const adb = a.context.db;
    const queries: Record<string, number> = {};
    for (const [name, text] of Object.entries(
      readmeQueries(adb.dialect.name, removedToken.fingerprint, new Date(Date.now() - 30 * DAY).toISOString().slice(0, 10)),
    )) {
      queries[name] = await time(() => sql.raw(text).execute(adb.kysely));
    }
    const auth = { authorization: `Bearer ${SECRET}` };
    const get = async (path: string) => {
      // A kept-alive connection the server closed while idle fails once: ask again on a new one.
      const res = await fetch(`${base}${path}`, { headers: auth }).catch(() => fetch(`${base}${path}`, { headers: auth }));
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`GET ${path}: ${res.status}`);
    };
    const api = {
      tokenHistory: await time(() => get(`/api/v1/tokens/${someToken.id}/history`)),
      legacyCached: await time(() => get('/api/LLM_TokenCheck/Check/deep?cached=1')),
      metrics: await time(() => get('/metrics')),
    };
    const cliEnv = env(3650);
    const cliMs = {
      status: await time(() => cli(['status'], cliEnv)),
      historyOfRemovedToken: await time(() => cli(['history', '--token', removedToken.fingerprint], cliEnv)),
    };
    await a.stop();

    const keepDays = Math.max(1, Math.floor(spanDays / 3));
    process.stderr.write(`bench history: retention pass down to ${keepDays} days…\n`);
    const b = await Daemon.create(loadConfig(env(keepDays)), { logger: createLogger('warn') });
    await b.start();
    const retention = {
      ...(await withRunWrites(b.context.db, (write) => watched(b.httpAddress!.url, () => b.trimHistory(), write))),
      longestStepMs: round(b.lastHistoryPass?.longestStepMs ?? 0),
      longestStepKind: b.lastHistoryPass?.longestStepKind,
      steps: b.lastHistoryPass?.steps,
    };
    const idleStallMs = await idleStall(5_000);
    const walBytes = url.startsWith('sqlite:') ? (statSync(`${url.slice(7)}-wal`, { throwIfNoEntry: false })?.size ?? 0) : null;
    await b.stop();

    console.log(
      JSON.stringify({
        case: 'history',
        dialect: adb.dialect.name,
        rows,
        tokens: TOKENS,
        spanDays: round(spanDays),
        seedS,
        seedAgeH,
        bytesPerCheck,
        coldStartToHealthzMs: coldStartMs,
        startToHealthzMs,
        rollupPass: rollup,
        retentionPass: { ...retention, removed: retention.result, keepDays, walBytesAfter: walBytes },
        idleStallMs,
        loadAvg1m: round(loadavg()[0]!, 2),
        readmeQueriesMs: queries,
        apiMs: api,
        cliMs,
        node: process.version,
      }),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
