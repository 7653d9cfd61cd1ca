// Starts throwaway PostgreSQL and MariaDB servers for one test run. Workers learn their URLs from
// the env vars TSCHK_TEST_PG_URL / TSCHK_TEST_MYSQL_URL (vitest builds the forks' env from
// process.env after global setup has run) and from inject('tschkDatabaseUrls').
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';
import type { TestProject } from 'vitest/node';
import { buildConsole } from '../web/build.mjs';
import { CHROMIUM, haveChromium } from './helpers/chromium.js';

declare module 'vitest' {
  export interface ProvidedContext {
    tschkDatabaseUrls: { postgres?: string; mysql?: string };
  }
}

type Server = 'postgres' | 'mysql';
const ENV: Record<Server, string> = { postgres: 'TSCHK_TEST_PG_URL', mysql: 'TSCHK_TEST_MYSQL_URL' };
const run = promisify(execFile);
const isRoot = process.getuid?.() === 0;

function findBinary(name: string): string | undefined {
  const pgDirs = (() => {
    try {
      return readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a)).map((v) => `/usr/lib/postgresql/${v}/bin`);
    } catch {
      return [];
    }
  })();
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/usr/bin', ...pgDirs];
  for (const dir of dirs.filter(Boolean)) {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // not here
    }
  }
  return undefined;
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve, reject) => srv.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as { port: number };
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-15).join('\n');
  } catch {
    return '';
  }
}

interface Running {
  url: string;
  stop(): Promise<void>;
  /** Last resort on process exit: synchronous, no waiting. */
  kill(): void;
}

async function startPostgres(): Promise<Running> {
  const initdb = findBinary('initdb');
  const pgCtl = findBinary('pg_ctl');
  if (!initdb || !pgCtl) throw new MissingBinary('initdb/pg_ctl not found');
  const dir = mkdtempSync(join(tmpdir(), 'tschk-pg-'));
  const data = join(dir, 'data');
  // initdb refuses to run as root, so the cluster belongs to the distro's postgres user.
  const asPg = isRoot ? ['runuser', '-u', 'postgres', '--'] : [];
  const pgRun = (bin: string, args: string[]) => {
    const [cmd, ...rest] = [...asPg, bin, ...args];
    return run(cmd!, rest);
  };
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  try {
    if (isRoot) await run('chown', ['postgres:', dir]);
    await pgRun(initdb, ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
    const port = await freePort();
    const opts = `-c listen_addresses=127.0.0.1 -p ${port} -k ${dir} -c fsync=off -c synchronous_commit=off -c full_page_writes=off`;
    await pgRun(pgCtl, ['-D', data, '-l', join(dir, 'server.log'), '-o', opts, '-w', '-t', '60', 'start']).catch((e: unknown) => {
      throw new Error(`postgres did not start: ${String(e)}\n${tail(join(dir, 'server.log'))}`);
    });
    return {
      url: `postgres://postgres@127.0.0.1:${port}/postgres`,
      async stop() {
        await pgRun(pgCtl, ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => undefined);
        cleanup();
      },
      kill() {
        try {
          const pid = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
          process.kill(pid, 'SIGQUIT'); // = pg_ctl stop -m immediate
        } catch {
          // already gone
        }
        cleanup();
      },
    };
  } catch (e) {
    cleanup();
    throw e;
  }
}

async function startMariadb(): Promise<Running> {
  const installDb = findBinary('mariadb-install-db');
  const mariadbd = findBinary('mariadbd');
  if (!installDb || !mariadbd) throw new MissingBinary(`${installDb ? 'mariadbd' : 'mariadb-install-db'} not found`);
  const dir = mkdtempSync(join(tmpdir(), 'tschk-mysql-'));
  const data = join(dir, 'data');
  const errLog = join(dir, 'error.log');
  const asUser = isRoot ? ['--user=root'] : [];
  const speed = ['--innodb-flush-log-at-trx-commit=0', '--innodb-doublewrite=0', '--sync-frm=0'];
  let child: ChildProcess | undefined;
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  const kill = () => {
    if (child?.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  try {
    await run(installDb, ['--no-defaults', ...asUser, `--datadir=${data}`, '--skip-test-db', '--skip-name-resolve', ...speed]);
    // install-db bootstraps with --skip-grant-tables, so CREATE USER only works at the first real start.
    writeFileSync(
      join(dir, 'init.sql'),
      "CREATE USER 'tschk'@'%' IDENTIFIED BY 'tschk';\nGRANT ALL PRIVILEGES ON *.* TO 'tschk'@'%' WITH GRANT OPTION;\n",
    );
    const port = await freePort();
    child = spawn(
      mariadbd,
      [
        '--no-defaults',
        ...asUser,
        `--datadir=${data}`,
        `--socket=${join(dir, 'mysqld.sock')}`,
        `--pid-file=${join(dir, 'mysqld.pid')}`,
        `--tmpdir=${dir}`,
        `--log-error=${errLog}`,
        `--port=${port}`,
        '--bind-address=127.0.0.1',
        '--skip-name-resolve',
        `--init-file=${join(dir, 'init.sql')}`,
        // What Debian's own mariadb.conf.d sets; the compiled-in default of 10.11 is latin1.
        '--character-set-server=utf8mb4',
        '--collation-server=utf8mb4_general_ci',
        '--performance-schema=OFF',
        ...speed,
      ],
      { stdio: 'ignore' },
    );
    const url = `mysql://tschk:tschk@127.0.0.1:${port}/mysql`;
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`mariadbd exited early:\n${tail(errLog)}`);
      try {
        const conn = await mysql.createConnection(url);
        await conn.end();
        break;
      } catch (e) {
        if (Date.now() > deadline) throw new Error(`mariadbd not ready after 60 s: ${String(e)}\n${tail(errLog)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const proc = child;
    return {
      url,
      async stop() {
        if (proc.exitCode === null && proc.signalCode === null) {
          const exited = new Promise((r) => proc.once('exit', r));
          proc.kill('SIGKILL'); // data is thrown away anyway
          await exited;
        }
        cleanup();
      },
      kill() {
        kill();
        cleanup();
      },
    };
  } catch (e) {
    kill();
    cleanup();
    throw e;
  }
}

class MissingBinary extends Error {}

function requestedServers(): Server[] {
  const raw = process.env.TSCHK_TEST_DIALECTS;
  if (!raw) return ['postgres', 'mysql'];
  const names = raw.split(',').map((s) => s.trim().toLowerCase());
  const out: Server[] = [];
  if (names.some((n) => n === 'postgres' || n === 'pg' || n === 'postgresql')) out.push('postgres');
  if (names.some((n) => n === 'mysql' || n === 'mariadb')) out.push('mysql');
  return out;
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const started = Date.now();
  // The console's browser files, fresh for every run: its pages and tests load them from dist/web.
  buildConsole();
  const wanted = requestedServers();
  const requireAll = process.env.TSCHK_TEST_REQUIRE_DIALECTS === 'all';
  const running: Running[] = [];
  const stopAll = async () => {
    process.off('exit', killAll);
    await Promise.all(running.splice(0).map((r) => r.stop()));
  };
  const killAll = () => running.forEach((r) => r.kill());
  process.on('exit', killAll);

  const urls: { postgres?: string; mysql?: string } = {};
  const skipped: string[] = [];
  const reused: string[] = [];
  const starters: Record<Server, () => Promise<Running>> = { postgres: startPostgres, mysql: startMariadb };
  const results = await Promise.allSettled(
    (['postgres', 'mysql'] as const).map(async (server) => {
      if (!wanted.includes(server)) {
        delete process.env[ENV[server]];
        return;
      }
      // A server given from outside (e.g. a developer's own) is used instead of starting one.
      const given = process.env[ENV[server]];
      if (given) {
        urls[server] = given;
        reused.push(`${server} from ${ENV[server]}`);
        return;
      }
      try {
        const r = await starters[server]();
        running.push(r);
        urls[server] = r.url;
        process.env[ENV[server]] = r.url;
      } catch (e) {
        if (!(e instanceof MissingBinary)) throw e;
        skipped.push(`${server === 'mysql' ? 'mariadb' : server} (${e.message})`);
      }
    }),
  );
  // CI sets TSCHK_TEST_REQUIRE_BROWSER=1: the console's browser tests must run there, never skip.
  const noBrowser = !haveChromium();
  if (noBrowser && process.env.TSCHK_TEST_REQUIRE_BROWSER === '1') {
    await Promise.allSettled(results);
    await stopAll();
    throw new Error(`TSCHK_TEST_REQUIRE_BROWSER=1 but there is no Chromium at ${CHROMIUM} (apt-get install chromium)`);
  }
  const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failure || (requireAll && skipped.length > 0)) {
    await stopAll();
    throw failure ? failure.reason : new Error(`TSCHK_TEST_REQUIRE_DIALECTS=all but missing: ${skipped.join(', ')}`);
  }

  project.provide('tschkDatabaseUrls', urls);
  const on = ['sqlite', ...(['postgres', 'mysql'] as const).filter((s) => urls[s])].join(', ');
  console.log(`tschk tests: dialects ${on} (setup ${((Date.now() - started) / 1000).toFixed(1)} s)${reused.length ? `; ${reused.join(', ')}` : ''}`);
  if (skipped.length) console.log(`tschk tests: SKIPPED dialects: ${skipped.join(', ')}`);
  console.log(noBrowser ? `tschk tests: SKIPPED the console's browser tests: no Chromium at ${CHROMIUM}` : `tschk tests: browser ${CHROMIUM}`);
  return stopAll;
}
