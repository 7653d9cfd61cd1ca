// Start-up with a large legacy token file: `npm run build && node dist/bench/token-file-sync.js
// [--lines N] [--database URL]`. Prints one JSON line: how long `tschk serve` took to listen on
// HTTP and to finish syncing the file, its peak resident memory (VmHWM) by then, how long a
// second sync of the unchanged file took (a legacy `?cached=1` request), and for comparison the
// peak of `tschk tokens import` of the same file into an empty database. With `--in-process`, it
// times three syncs inside this process instead — the first, one of the unchanged file, one after
// half the lines were replaced — each with the peak resident memory it reached (VmHWM, reset
// between them).
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const main = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'main.js');
const SECRET = 'bench-api-secret';

/** Resets VmHWM to the current resident size (Linux `clear_refs`). */
function resetPeak(pid: number | 'self'): void {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

function peakRssMb(pid: number | 'self'): number {
  const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Math.round(Number(kb) / 102.4) / 10;
}

async function serveMeasurement(env: NodeJS.ProcessEnv) {
  const started = performance.now();
  const child = spawn(process.execPath, [main, 'serve'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  const seen = new Map<string, number>();
  let url = '';
  let buffered = '';
  const waiters: Array<() => void> = [];
  child.stdout.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const line of lines) {
      const entry = JSON.parse(line) as { msg: string; url?: string; level: number };
      if (!seen.has(entry.msg)) seen.set(entry.msg, performance.now() - started);
      if (entry.msg === 'HTTP listening') url = entry.url!;
      if (entry.level >= 50) process.stderr.write(line + '\n');
    }
    for (const w of waiters.splice(0)) w();
  });
  const until = async (msg: string) => {
    while (!seen.has(msg)) {
      if (child.exitCode !== null) throw new Error(`tschk exited before '${msg}'`);
      await new Promise<void>((r) => waiters.push(r));
    }
    return seen.get(msg)!;
  };
  const listeningMs = await until('HTTP listening');
  const syncedMs = await until('token file synced');
  const rss = peakRssMb(child.pid!);
  resetPeak(child.pid!);
  const again = performance.now();
  const res = await fetch(`${url}/api/LLM_TokenCheck/Check/deep?cached=1`, { headers: { authorization: `Bearer ${SECRET}` } });
  const body = (await res.json()) as { totalTokenCount?: number };
  const resyncMs = performance.now() - again;
  const rssAfterResync = peakRssMb(child.pid!);
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
  return {
    listeningMs: Math.round(listeningMs),
    syncedMs: Math.round(syncedMs),
    peakRssMb: rss,
    resyncMs: Math.round(resyncMs),
    peakRssAfterResyncMb: rssAfterResync,
    tokens: body.totalTokenCount,
  };
}

async function inProcessMeasurement(databaseUrl: string, dataDir: string, file: string) {
  const { loadConfig } = await import('../src/config.js');
  const { openDatabase } = await import('../src/db/connect.js');
  const { migrateToLatest } = await import('../src/db/migrate.js');
  const { createLogger } = await import('../src/logger.js');
  const { syncSources } = await import('../src/sources/index.js');
  const config = loadConfig({
    TSCHK_DATABASE_URL: databaseUrl,
    TSCHK_LEGACY_DATA_DIR: dataDir,
    TokenStatuCheckUrls__DeepTokenCheckUrl: 'http://127.0.0.1:9/token/check',
  });
  const db = openDatabase(config.database.url);
  await migrateToLatest(db);
  const logger = createLogger('warn');
  const measure = async () => {
    (globalThis as { gc?: () => void }).gc?.();
    resetPeak('self');
    const base = peakRssMb('self');
    const t = performance.now();
    await syncSources({ db, config, logger });
    return { ms: Math.round(performance.now() - t), peakRssMb: peakRssMb('self'), baseRssMb: base };
  };
  const first = await measure();
  const unchanged = await measure();
  const text = readFileSync(file, 'utf8').split('\n');
  for (let i = 0; i < text.length - 1; i += 2) text[i] = `tok-${randomBytes(24).toString('hex')}`;
  writeFileSync(file, text.join('\n'));
  const halfReplaced = await measure();
  await db.close();
  return { first, unchanged, halfReplaced };
}

function importPeakRssMb(env: NodeJS.ProcessEnv, file: string): number {
  const r = spawnSync('/usr/bin/time', ['-f', '%M', process.execPath, main, 'tokens', 'import', '--provider', 'deep', file], {
    env,
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`tokens import failed: ${r.stderr}`);
  return Math.round(Number(r.stderr.trim().split('\n').at(-1)) / 102.4) / 10;
}

const { values } = parseArgs({
  options: { lines: { type: 'string', default: '100000' }, database: { type: 'string' }, 'in-process': { type: 'boolean' } },
});
const lines = Number(values.lines);
const dir = mkdtempSync(join(tmpdir(), 'tschk-bench-files-'));
try {
  const file = join(dir, 'data', 'LLM-Deep', 'token.json');
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, Array.from({ length: lines }, () => `tok-${randomBytes(24).toString('hex')}\n`).join(''));
  const env = (db: string): NodeJS.ProcessEnv => ({
    PATH: process.env.PATH,
    TSCHK_DATABASE_URL: db,
    TSCHK_LEGACY_DATA_DIR: join(dir, 'data'),
    TokenStatuCheckUrls__DeepTokenCheckUrl: 'http://127.0.0.1:9/token/check',
    TSCHK_API_TOKEN: SECRET,
    TSCHK_HTTP_PORT: '0',
    TSCHK_HTTP_HOST: '127.0.0.1',
    TSCHK_RUN_ON_START: 'false',
    LOG_LEVEL: 'info',
  });
  if (values['in-process']) {
    const r = await inProcessMeasurement(values.database ?? `sqlite:${join(dir, 'serve.db')}`, join(dir, 'data'), file);
    console.log(
      JSON.stringify({ lines, database: values.database ? new URL(values.database).protocol : 'sqlite:', ...r, node: process.version }),
    );
  } else {
    const serve = await serveMeasurement(env(values.database ?? `sqlite:${join(dir, 'serve.db')}`));
    const importEnv = { ...env(values.database ? values.database : `sqlite:${join(dir, 'import.db')}`), TSCHK_LEGACY_DATA_DIR: undefined };
    const importRss = values.database ? undefined : importPeakRssMb(importEnv, file);
    console.log(
      JSON.stringify({
        lines,
        database: values.database ? new URL(values.database).protocol : 'sqlite:',
        ...serve,
        cliImportPeakRssMb: importRss,
        node: process.version,
      }),
    );
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
