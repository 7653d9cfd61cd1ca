// Throughput and memory benchmark: `npm run bench [-- --n N --latency MS --concurrency C]`.
// Per case: this process seeds a SQLite database and prints one JSON line; a mock free-api
// answers after a fixed latency; the measured tschk process does one forced run; a bare HTTP
// client measures what the machine itself allows against the same mock.
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openDatabase } from '../src/db/connect.js';
import { migrateToLatest } from '../src/db/migrate.js';
import { upsertProvider } from '../src/db/providers.js';
import { importTokens } from '../src/db/tokens.js';
import type { BareMeasurement } from './bare-client.js';
import type { RunMeasurement } from './tschk-run.js';
import type { UpstreamMessage } from './upstream.js';

interface Case {
  name: string;
  n: number;
  latencyMs: number;
  concurrency: number;
  targets: { minRatio?: number; maxRssMb: number; minWholeProcessRatio?: number };
}

const DEFAULTS = { n: 20_000, latencyMs: 20, concurrency: 64 };
/** The targets, for a 2-core machine. */
const THROUGHPUT: Case = { name: 'throughput', ...DEFAULTS, targets: { minRatio: 0.9, maxRssMb: 200, minWholeProcessRatio: 0.95 } };
const MEMORY: Case = { name: 'memory', ...DEFAULTS, n: 200_000, targets: { maxRssMb: 200 } };
/** Enough requests for a steady rate; the yardstick need not repeat a long case. */
const BARE_CLIENT_MAX_N = 20_000;
/** Start-up and idle targets: `tschk --help`, `tschk status` (seconds), the idle daemon (MB resident). */
const START_TARGETS = { helpS: 0.2, statusS: 0.35 };
const IDLE_TARGET_MB = 70;
/** Runs per start-up figure; the median is reported, the machine being shared and noisy. */
const START_RUNS = 11;
/** How long the idle daemon settles after it says it serves, before its RSS is read. */
const IDLE_SETTLE_MS = 5_000;
const MAIN = new URL('../src/main.js', import.meta.url).pathname;

/** Requests the mock answers before anything is measured. */
const UPSTREAM_WARM_UP = 5_000;

const USAGE = `Usage: npm run bench [-- --n N] [--latency MS] [--concurrency C]
  (or BENCH_N, BENCH_LATENCY_MS, BENCH_CONCURRENCY in the environment)
Without any of them: the throughput case (N=20000, L=20 ms, C=64) and the memory case (N=200000).
Exit: 0 every target met, 1 a target missed, 2 the bench could not run.`;

function casesFromArgs(): Case[] {
  const { values } = parseArgs({
    options: {
      n: { type: 'string' },
      latency: { type: 'string' },
      concurrency: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const raw = {
    n: values.n ?? process.env.BENCH_N,
    latency: values.latency ?? process.env.BENCH_LATENCY_MS,
    concurrency: values.concurrency ?? process.env.BENCH_CONCURRENCY,
  };
  if (raw.n === undefined && raw.latency === undefined && raw.concurrency === undefined) return [THROUGHPUT, MEMORY];
  const int = (name: string, v: string | undefined, def: number) => {
    if (v === undefined) return def;
    if (!/^\d+$/.test(v) || Number(v) < 1) throw new Error(`--${name}: expected a whole number ≥ 1, got '${v}'\n${USAGE}`);
    return Number(v);
  };
  const params = {
    n: int('n', raw.n, DEFAULTS.n),
    latencyMs: int('latency', raw.latency, DEFAULTS.latencyMs),
    concurrency: int('concurrency', raw.concurrency, DEFAULTS.concurrency),
  };
  const same = (c: Case) => c.n === params.n && c.latencyMs === params.latencyMs && c.concurrency === params.concurrency;
  const named = [THROUGHPUT, MEMORY].find(same);
  return [named ?? { name: 'custom', ...params, targets: params.n > THROUGHPUT.n ? MEMORY.targets : THROUGHPUT.targets }];
}

function child(script: string, args: string[]): ChildProcess {
  return fork(new URL(script, import.meta.url), args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
}

function nextMessage<T>(proc: ChildProcess, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`${what} exited (code ${code}) before answering`));
    proc.once('exit', onExit);
    proc.once('message', (m) => {
      proc.off('exit', onExit);
      resolve(m as T);
    });
  });
}

async function startUpstream(latencyMs: number) {
  const proc = child('./upstream.js', [String(latencyMs)]);
  const m = await nextMessage<UpstreamMessage>(proc, 'mock upstream');
  if (!('ready' in m)) throw new Error('mock upstream did not report its port');
  const calls = async () => {
    proc.send('calls');
    const answer = await nextMessage<UpstreamMessage>(proc, 'mock upstream');
    if (!('calls' in answer)) throw new Error('mock upstream did not report its calls');
    return answer.calls;
  };
  return { proc, checkUrl: `http://127.0.0.1:${m.ready.port}/token/check`, calls };
}

/** Wall-clock milliseconds of a whole process, from spawn to exit; it must exit 0. */
function wholeProcessMs(args: string[], env: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const began = performance.now();
    const proc = spawn(process.execPath, args, { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    proc.once('error', reject);
    proc.once('exit', (code) => {
      const ms = performance.now() - began;
      if (code === 0) resolve(ms);
      else reject(new Error(`node ${args.join(' ')} exited ${code}: ${stderr.split('\n')[0]}`));
    });
  });
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function startUpCase() {
  const dir = await mkdtemp(join(tmpdir(), 'tschk-bench-'));
  try {
    const env = { TSCHK_DATABASE_URL: `sqlite:${join(dir, 'tschk.db')}` };
    await wholeProcessMs([MAIN, 'migrate'], env);
    process.stderr.write(`bench start-up: node -e 0, tschk --help and tschk status, ${START_RUNS} times each…\n`);
    const times: Record<'node' | 'help' | 'status', number[]> = { node: [], help: [], status: [] };
    // Interleaved, so that a busy moment of the machine weighs on all three alike.
    for (let i = 0; i < START_RUNS; i++) {
      times.node.push(await wholeProcessMs(['-e', '0'], env));
      times.help.push(await wholeProcessMs([MAIN, '--help'], env));
      times.status.push(await wholeProcessMs([MAIN, 'status'], env));
    }
    const s = (k: keyof typeof times) => Number((median(times[k]) / 1000).toFixed(3));
    const targets = {
      helpS: { target: `<= ${START_TARGETS.helpS}`, met: s('help') <= START_TARGETS.helpS },
      statusS: { target: `<= ${START_TARGETS.statusS}`, met: s('status') <= START_TARGETS.statusS },
    };
    return {
      case: 'start-up',
      runs: START_RUNS,
      nodeS: s('node'),
      helpS: s('help'),
      statusS: s('status'),
      ...machine(),
      targets,
      met: Object.values(targets).every((t) => t.met),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
    srv.once('error', reject);
  });
}

/** `tschk serve` with no provider and no token, left alone: its resident memory once settled. */
async function idleCase() {
  const dir = await mkdtemp(join(tmpdir(), 'tschk-bench-'));
  const env = {
    PATH: process.env.PATH ?? '',
    TSCHK_DATABASE_URL: `sqlite:${join(dir, 'tschk.db')}`,
    TSCHK_HTTP_PORT: String(await freePort()),
    TSCHK_RUN_ON_START: 'false',
  };
  process.stderr.write(`bench idle: tschk serve with no tokens, RSS ${IDLE_SETTLE_MS / 1000} s after it serves…\n`);
  const proc = spawn(process.execPath, [MAIN, 'serve'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve, reject) => {
      let out = '';
      proc.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('tschk serving')) resolve();
      });
      proc.once('exit', (code) => reject(new Error(`tschk serve exited (code ${code}) before serving`)));
    });
    await new Promise((r) => setTimeout(r, IDLE_SETTLE_MS));
    const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${proc.pid}/status`, 'utf8'))?.[1]);
    const rssMb = Number((kb / 1024).toFixed(1));
    const targets = { rssMb: { target: `<= ${IDLE_TARGET_MB}`, met: rssMb <= IDLE_TARGET_MB } };
    return { case: 'idle', rssMb, ...machine(), targets, met: targets.rssMb.met };
  } finally {
    proc.kill('SIGTERM');
    await new Promise((r) => proc.once('exit', r));
    await rm(dir, { recursive: true, force: true });
  }
}

function machine() {
  return { cpus: availableParallelism(), loadAvg1m: Number(loadavg()[0]!.toFixed(2)), node: process.version };
}

function bareClient(checkUrl: string, n: number, concurrency: number): Promise<BareMeasurement> {
  return nextMessage<BareMeasurement>(child('./bare-client.js', [checkUrl, String(n), String(concurrency)]), 'bare client');
}

async function seed(databaseUrl: string, checkUrl: string, n: number): Promise<void> {
  const db = openDatabase(databaseUrl);
  try {
    await migrateToLatest(db);
    const provider = await upsertProvider(db, { name: 'bench', kind: 'free-api', checkUrl });
    const entries = Array.from({ length: n }, (_, i) => `bench-token-${String(i).padStart(7, '0')}-${'x'.repeat(24)}`);
    const { added } = await importTokens(db, { providerId: provider.id, pool: 'default', entries, source: 'cli' });
    if (added !== n) throw new Error(`seeding imported ${added} tokens instead of ${n}`);
  } finally {
    await db.close();
  }
}

async function runCase(c: Case) {
  const dir = await mkdtemp(join(tmpdir(), 'tschk-bench-'));
  const upstream = await startUpstream(c.latencyMs);
  try {
    const databaseUrl = `sqlite:${join(dir, 'tschk.db')}`;
    process.stderr.write(`bench ${c.name}: importing ${c.n} tokens…\n`);
    await seed(databaseUrl, upstream.checkUrl, c.n);

    // The mock, like a free-api in service, has answered before: its own JIT warm-up is not tschk's.
    await bareClient(upstream.checkUrl, UPSTREAM_WARM_UP, c.concurrency);
    const callsBefore = await upstream.calls();

    process.stderr.write(`bench ${c.name}: one forced run at concurrency ${c.concurrency}, upstream latency ${c.latencyMs} ms…\n`);
    const env = {
      TSCHK_DATABASE_URL: databaseUrl,
      TSCHK_CONCURRENCY: String(c.concurrency),
      TSCHK_PROVIDER_CONCURRENCY: String(c.concurrency),
      TSCHK_PRUNE: 'off',
      TSCHK_RUN_ON_START: 'false',
      LOG_LEVEL: 'info',
    };
    const run = await nextMessage<RunMeasurement>(child('./tschk-run.js', [JSON.stringify(env)]), 'tschk run');
    const calls = (await upstream.calls()) - callsBefore;
    // A run that silently checked fewer tokens, or retried, would flatter the figures.
    if (run.status !== 'done' || run.checked !== c.n || run.live !== c.n || calls !== c.n) {
      throw new Error(
        `bench ${c.name} invalid: run ${run.status}, checked ${run.checked}, live ${run.live}, upstream calls ${calls}, expected ${c.n}`,
      );
    }

    const bareN = Math.min(c.n, BARE_CLIENT_MAX_N);
    process.stderr.write(`bench ${c.name}: ${bareN} bare HTTP requests for comparison…\n`);
    const bare = await bareClient(upstream.checkUrl, bareN, c.concurrency);
    const whole = c.targets.minWholeProcessRatio === undefined ? undefined : await wholeProcess(c, env, upstream.checkUrl);
    const line = report(c, run, (bareN * 1000) / bare.durationMs);
    if (!whole) return line;
    const targets = {
      ...line.targets,
      wholeProcessRatio: {
        target: `>= ${c.targets.minWholeProcessRatio}`,
        met: whole.wholeProcessRatio >= c.targets.minWholeProcessRatio!,
      },
    };
    return { ...line, ...whole, targets, met: Object.values(targets).every((t) => t.met) };
  } finally {
    upstream.proc.disconnect();
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * `tschk check --force` as a user runs it, start-up and teardown included, beside the bare client
 * as a whole process sending the same requests, timed just before and just after.
 */
async function wholeProcess(c: Case, env: Record<string, string>, checkUrl: string) {
  process.stderr.write(`bench ${c.name}: tschk check --force as a whole process, between two bare client processes…\n`);
  const bareArgs = [new URL('./bare-client.js', import.meta.url).pathname, checkUrl, String(c.n), String(c.concurrency)];
  const before = await wholeProcessMs(bareArgs, {});
  const tschkMs = await wholeProcessMs([MAIN, 'check', '--force'], { ...env, LOG_LEVEL: 'warn' });
  const after = await wholeProcessMs(bareArgs, {});
  const bareMs = (before + after) / 2;
  return {
    wholeProcessS: Number((tschkMs / 1000).toFixed(2)),
    bareWholeProcessS: Number((bareMs / 1000).toFixed(2)),
    wholeProcessRatio: Number((bareMs / tschkMs).toFixed(3)),
  };
}

function report(c: Case, m: RunMeasurement, barePerS: number) {
  const round = (v: number, digits: number) => Number(v.toFixed(digits));
  const tokensPerS = (c.n * 1000) / m.durationMs;
  const idealPerS = (c.concurrency * 1000) / c.latencyMs;
  const ratio = tokensPerS / idealPerS;
  const peakRssMb = Math.max(m.sampledPeakRssBytes / 2 ** 20, m.maxRssKb / 1024);
  const targets: Record<string, { target: string; met: boolean }> = {};
  if (c.targets.minRatio !== undefined) targets.ratio = { target: `>= ${c.targets.minRatio}`, met: ratio >= c.targets.minRatio };
  targets.peakRssMb = { target: `<= ${c.targets.maxRssMb}`, met: peakRssMb <= c.targets.maxRssMb };
  return {
    case: c.name,
    n: c.n,
    latencyMs: c.latencyMs,
    concurrency: c.concurrency,
    tokensPerS: round(tokensPerS, 1),
    idealPerS: round(idealPerS, 1),
    ratio: round(ratio, 3),
    cpuUsPerCheck: round(m.cpuUs / c.n, 1),
    peakRssMb: round(peakRssMb, 1),
    durationS: round(m.durationMs / 1000, 2),
    bareClientPerS: round(barePerS, 1),
    ratioToBareClient: round(tokensPerS / barePerS, 3),
    cpus: availableParallelism(),
    loadAvg1m: round(loadavg()[0]!, 2),
    node: process.version,
    targets,
    met: Object.values(targets).every((t) => t.met),
  };
}

let allMet = true;
try {
  const cases = casesFromArgs();
  const lines = cases.length > 1 ? [startUpCase, idleCase] : [];
  for (const measure of lines) {
    const line = await measure();
    allMet &&= line.met;
    console.log(JSON.stringify(line));
  }
  for (const c of cases) {
    const line = await runCase(c);
    allMet &&= line.met;
    console.log(JSON.stringify(line));
  }
} catch (err) {
  console.error(`bench: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(2);
}
process.exitCode = allMet ? 0 : 1;
