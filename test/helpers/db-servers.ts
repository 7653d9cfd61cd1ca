// Throwaway PostgreSQL and MariaDB servers: test/global-setup.ts starts the shared ones with these,
// and a test that must stop and start a server (a restart in the middle of a run) starts its own.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';

const run = promisify(execFile);
const isRoot = process.getuid?.() === 0;

export class MissingBinary extends Error {}

/** Where a server keeps its data: memory when there is a tmpfs for it (creating tables is file work). */
function dataRoot(): string {
  try {
    accessSync('/dev/shm', constants.W_OK);
    return '/dev/shm';
  } catch {
    return tmpdir();
  }
}

export function findBinary(name: string): string | undefined {
  const pgDirs = (() => {
    try {
      return readdirSync('/usr/lib/postgresql')
        .sort((a, b) => Number(b) - Number(a))
        .map((v) => `/usr/lib/postgresql/${v}/bin`);
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

export async function freePort(): Promise<number> {
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

export interface TestServer {
  url: string;
  /** Stops the server the way an operator does (clients are told it shuts down); the data stays. */
  stop(): Promise<void>;
  /** Starts it again on the same port and data. */
  start(): Promise<void>;
  /** Stops it at once and removes its data. */
  destroy(): Promise<void>;
  /** Last resort on process exit: synchronous, no waiting. */
  kill(): void;
}

export async function startPostgres(): Promise<TestServer> {
  const initdb = findBinary('initdb');
  const pgCtl = findBinary('pg_ctl');
  if (!initdb || !pgCtl) throw new MissingBinary('initdb/pg_ctl not found');
  const dir = mkdtempSync(join(dataRoot(), 'tschk-pg-'));
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
    const start = () =>
      pgRun(pgCtl, ['-D', data, '-l', join(dir, 'server.log'), '-o', opts, '-w', '-t', '60', 'start']).then(
        () => undefined,
        (e: unknown) => {
          throw new Error(`postgres did not start: ${String(e)}\n${tail(join(dir, 'server.log'))}`);
        },
      );
    await start();
    return {
      url: `postgres://postgres@127.0.0.1:${port}/postgres`,
      start,
      // "fast": every session is told 57P01 (terminating connection due to administrator command).
      stop: () => pgRun(pgCtl, ['-D', data, '-m', 'fast', '-w', 'stop']).then(() => undefined),
      async destroy() {
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

export async function startMariadb(): Promise<TestServer> {
  const installDb = findBinary('mariadb-install-db');
  const mariadbd = findBinary('mariadbd');
  if (!installDb || !mariadbd) throw new MissingBinary(`${installDb ? 'mariadbd' : 'mariadb-install-db'} not found`);
  const dir = mkdtempSync(join(dataRoot(), 'tschk-mysql-'));
  const data = join(dir, 'data');
  const errLog = join(dir, 'error.log');
  const asUser = isRoot ? ['--user=root'] : [];
  const speed = ['--innodb-flush-log-at-trx-commit=0', '--innodb-doublewrite=0', '--sync-frm=0'];
  let child: ChildProcess | undefined;
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  const running = () => child !== undefined && child.exitCode === null && child.signalCode === null;
  const kill = () => {
    if (running()) child!.kill('SIGKILL');
  };
  try {
    await run(installDb, ['--no-defaults', ...asUser, `--datadir=${data}`, '--skip-test-db', '--skip-name-resolve', ...speed]);
    // install-db bootstraps with --skip-grant-tables, so CREATE USER only works at the first real start.
    writeFileSync(
      join(dir, 'init.sql'),
      "CREATE USER 'tschk'@'%' IDENTIFIED BY 'tschk';\nGRANT ALL PRIVILEGES ON *.* TO 'tschk'@'%' WITH GRANT OPTION;\n",
    );
    const port = await freePort();
    const url = `mysql://tschk:tschk@127.0.0.1:${port}/mysql`;
    let firstStart = true;
    const start = async () => {
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
          ...(firstStart ? [`--init-file=${join(dir, 'init.sql')}`] : []),
          // What Debian's own mariadb.conf.d sets; the compiled-in default of 10.11 is latin1.
          '--character-set-server=utf8mb4',
          '--collation-server=utf8mb4_general_ci',
          '--performance-schema=OFF',
          ...speed,
        ],
        { stdio: 'ignore' },
      );
      firstStart = false;
      const proc = child;
      const deadline = Date.now() + 60_000;
      for (;;) {
        if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`mariadbd exited early:\n${tail(errLog)}`);
        try {
          const conn = await mysql.createConnection(url);
          await conn.end();
          break;
        } catch (e) {
          if (Date.now() > deadline) throw new Error(`mariadbd not ready after 60 s: ${String(e)}\n${tail(errLog)}`);
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    };
    const exit = async (signal: NodeJS.Signals) => {
      const proc = child;
      if (proc && running()) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill(signal);
        await exited;
      }
    };
    await start();
    return {
      url,
      start,
      // SIGTERM: a normal shutdown; sessions get ER_SERVER_SHUTDOWN, then their connections close.
      stop: () => exit('SIGTERM'),
      async destroy() {
        await exit('SIGKILL'); // data is thrown away anyway
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
