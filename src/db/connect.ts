import { accessSync, constants, mkdirSync, statSync, type Stats } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import {
  CompiledQuery,
  Kysely,
  MysqlDialect,
  PostgresDialect,
  SqliteDialect,
  SqliteDriver,
  type DatabaseConnection,
  type Dialect,
  type SqliteDatabase,
} from 'kysely';
import type Mysql2 from 'mysql2';
import type Pg from 'pg';
import { ConfigError } from '../config.js';
import { profiles, type DialectProfile } from './dialect.js';
import { observedDialect, type OnStatement } from './observed-dialect.js';
import { reusingStatements } from './sqlite-statements.js';
import type { Database } from './schema.js';
import { parseDatabaseUrl, type DatabaseTarget, ACCEPTED_DATABASE_URLS } from './url.js';
import { WriteHealth, type RetryNotice } from './write-health.js';
import { WritePause } from './write-pause.js';

export interface Db {
  kysely: Kysely<Database>;
  dialect: DialectProfile;
  /** How the last write went; writers report their retries to it. */
  writes: WriteHealth;
  /** What a run's history writes wait for while the history keeper asks them to. */
  writePause: WritePause;
  close: () => Promise<void>;
}

/**
 * What a repository function runs its SQL on: the database, or one transaction of it (`kysely`
 * is then that transaction). One parameter either way; `inTransaction` makes the second kind.
 */
export type Executor = Pick<Db, 'kysely' | 'dialect'>;

/**
 * Runs `fn` in a transaction. Given an executor already in a transaction, `fn` joins it: a
 * repository function that needs its statements to commit together may be called on its own or
 * as a part of a larger transaction.
 */
export function inTransaction<T>(db: Executor, fn: (tx: Executor) => Promise<T>): Promise<T> {
  if (db.kysely.isTransaction) return fn(db);
  return db.kysely.transaction().execute((trx) => fn({ kysely: trx, dialect: db.dialect }));
}

export interface OpenOptions {
  /** Connections in the pool (PostgreSQL, MySQL). */
  poolSize?: number;
  /** Someone else's database (One-API): the SQLite file must exist and none of its settings is changed. */
  foreign?: boolean;
  /**
   * A pooled connection failed (server restart, failover, network): the pool drops it and the next
   * query opens another. Without a listener such an error would end the process.
   */
  onError?: (err: unknown) => void;
  /** A writer runs a whole transaction again after a transient error. */
  onRetry?: (err: unknown, notice: RetryNotice) => void;
  /** Told before every statement is sent (tests count them). */
  onStatement?: OnStatement;
}

export function openDatabase(url: string, opts: OpenOptions = {}): Db {
  const target = parseDatabaseUrl(url);
  if (!target) throw new Error(`unsupported database URL; accepted: ${ACCEPTED_DATABASE_URLS}`);
  return openTarget<Database>(target, opts);
}

/** Also used for a One-API database, whose tables are not ours. */
export function openTarget<DB>(
  target: DatabaseTarget,
  opts: OpenOptions = {},
): {
  kysely: Kysely<DB>;
  dialect: DialectProfile;
  writes: WriteHealth;
  writePause: WritePause;
  close: () => Promise<void>;
} {
  const writes = new WriteHealth(target.dialect, { onRetry: opts.onRetry });
  const dialect = createDialect(target, opts.poolSize ?? 10, opts.foreign ?? false, opts.onError ?? (() => {}));
  const kysely = new Kysely<DB>({ dialect: observedDialect(dialect, target.dialect, writes, opts.onStatement) });
  let closed: Promise<void> | undefined;
  return {
    kysely,
    dialect: profiles[target.dialect],
    writes,
    writePause: new WritePause(),
    close: () => (closed ??= kysely.destroy()),
  };
}

// The PostgreSQL and MySQL drivers are loaded only when such a database is opened: on SQLite,
// the default, they would cost ~7 MB of resident memory for nothing.
const require = createRequire(import.meta.url);

function createDialect(target: DatabaseTarget, poolSize: number, foreign: boolean, onError: (err: unknown) => void) {
  switch (target.dialect) {
    case 'sqlite':
      return immediateSqliteDialect(reusingStatements(openSqlite(target.location, foreign)));
    case 'postgres': {
      const pg = require('pg') as typeof Pg;
      const pool = new pg.Pool({
        connectionString: target.location,
        max: poolSize,
        // Without these a server that vanishes without a word (a failover to another address)
        // leaves a connect, or a query on a dead socket, waiting forever.
        connectionTimeoutMillis: 10_000,
        keepAlive: true,
        keepAliveInitialDelayMillis: 10_000,
        // bigint (count(*), bigserial) as a number; our ids stay far below 2^53.
        types: {
          getTypeParser: ((oid: number, format?: string) =>
            oid === 20
              ? (v: string) => Number(v)
              : (pg.types.getTypeParser(oid, format as 'text') as (v: string) => unknown)) as typeof pg.types.getTypeParser,
        },
      });
      // pg's pool listens for errors only on idle clients: a client lent out (a transaction waiting
      // between two statements) that loses its server emits 'error' with no listener, which ends
      // the process. Every client gets its own listener for its whole life.
      pool.on('connect', (client) => client.on('error', onError));
      pool.on('error', () => {}); // an idle client's error, already told by its own listener
      return new PostgresDialect({ pool });
    }
    case 'mysql': {
      const { createPool: createMysqlPool } = require('mysql2') as typeof Mysql2;
      const pool = createMysqlPool({
        uri: target.location,
        connectionLimit: poolSize,
        timezone: 'Z',
        supportBigNumbers: true,
        bigNumberStrings: false,
        dateStrings: false,
      });
      // mysql2 listens once per connection (to drop it from the pool); a later error on it, such
      // as "Can't write in closed state", could find no listener and end the process.
      pool.on('connection', (conn) => conn.on('error', onError));
      return new MysqlDialect({ pool });
    }
  }
}

/**
 * SQLite, with transactions that take the write lock at BEGIN (IMMEDIATE), waiting for it as long
 * as `busy_timeout` while another process writes. Kysely's plain BEGIN defers it to the first
 * write, and a transaction that has read by then cannot have it if another process wrote
 * meanwhile: SQLite answers SQLITE_BUSY at once, without waiting (docs/database-backends.md,
 * "Transactions that write"). A `tschk tokens import` beside the daemon failed so.
 */
function immediateSqliteDialect(database: SqliteDatabase): Dialect {
  const plain = new SqliteDialect({ database });
  return {
    createDriver: () => new ImmediateSqliteDriver({ database }),
    createQueryCompiler: () => plain.createQueryCompiler(),
    createAdapter: () => plain.createAdapter(),
    createIntrospector: (db) => plain.createIntrospector(db),
  };
}

class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }
}

/**
 * Every way an SQLite path cannot be used is a ConfigError naming the variable and the path:
 * otherwise the user sees only SQLite's `unable to open database file`.
 */
function openSqlite(location: string, foreign: boolean): BetterSqlite3.Database {
  // A One-API SQLite file can only come from TSCHK_ONEAPI_DATABASE_URL (the ADO.NET form is MySQL).
  const variable = foreign ? 'TSCHK_ONEAPI_DATABASE_URL' : 'TSCHK_DATABASE_URL';
  const fail = (detail: string): never => {
    throw new ConfigError(variable, detail);
  };
  if (location === ':memory:') return configureOwn(new BetterSqlite3(location));
  const path = resolve(location);
  if (!foreign) createFolders(dirname(path), fail);
  const existing = stat(path, fail);
  if (existing?.isDirectory()) fail(`${path} is a folder; name a file in it, e.g. sqlite:${join(path, 'tschk.db')}`);
  if (existing === undefined && foreign) fail(`no SQLite file at ${path}`);
  if (!foreign) {
    // SQLite writes the -wal and -shm files beside the database, so the folder must be writable too.
    writable(dirname(path), 'the folder of the database', fail);
    if (existing !== undefined) writable(path, 'the database', fail);
  }
  let sqlite: BetterSqlite3.Database | undefined;
  try {
    sqlite = new BetterSqlite3(path, { fileMustExist: foreign });
    sqlite.pragma('busy_timeout = 5000');
    // Opening reads nothing: a file that is not a database fails only at the first read.
    sqlite.pragma('schema_version');
    return foreign ? sqlite : configureOwn(sqlite);
  } catch (err) {
    sqlite?.close();
    const code = (err as { code?: unknown }).code;
    const message = err instanceof Error ? err.message : String(err);
    if (code === 'SQLITE_NOTADB') fail(`${path} is not an SQLite database (${message})`);
    if (code === 'SQLITE_CORRUPT') fail(`${path} is a damaged SQLite database (${message})`);
    if (typeof code === 'string' && /^SQLITE_(CANTOPEN|READONLY|PERM|AUTH)/.test(code)) {
      fail(`cannot open the SQLite file ${path} as uid ${uid()} (${message})`);
    }
    throw err;
  }
}

function configureOwn(sqlite: BetterSqlite3.Database): BetterSqlite3.Database {
  // Takes effect only in a new, empty file (before WAL mode writes it): retention can then give
  // free pages back in small steps. Older files keep their mode until a VACUUM.
  sqlite.pragma('auto_vacuum = INCREMENTAL');
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('synchronous = NORMAL');
  // History rows go in token order, so a batch touches one page per token: keep more of them cached (8 MB).
  sqlite.pragma('cache_size = -8192');
  return sqlite;
}

/**
 * One level at a time: Node 20's `mkdirSync(…, { recursive: true })` loops forever, at full CPU and
 * deaf to SIGTERM, when the kernel answers ENOENT for a parent that exists (`/proc/nope/t.db`).
 */
function createFolders(folder: string, fail: (detail: string) => never): void {
  const missing: string[] = [];
  let at = folder;
  let found = stat(at, fail);
  while (found === undefined && dirname(at) !== at) {
    missing.unshift(at);
    at = dirname(at);
    found = stat(at, fail);
  }
  if (found !== undefined && !found.isDirectory()) fail(`${at} is not a folder, so the database cannot be created in it`);
  for (const dir of missing) {
    try {
      mkdirSync(dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' && stat(dir, fail)?.isDirectory()) continue;
      if (code === 'EACCES' || code === 'EPERM') fail(notWritable(dirname(dir), `needed to create ${dir} in it`));
      fail(`cannot create the folder ${dir} for the SQLite file (${code ?? String(err)})`);
    }
  }
}

/** Undefined when nothing is there (or a file stands where a folder should be: ENOTDIR). */
function stat(path: string, fail: (detail: string) => never): Stats | undefined {
  try {
    return statSync(path, { throwIfNoEntry: false });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR') return undefined;
    if (code === 'EACCES' || code === 'EPERM') fail(`tschk runs as uid ${uid()} and may not look into ${dirname(path)} (${code})`);
    return fail(`cannot use ${path} (${code ?? String(err)})`);
  }
}

function writable(path: string, what: string, fail: (detail: string) => never): void {
  try {
    accessSync(path, constants.W_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EROFS') fail(`${path}, ${what}, is on a read-only file system`);
    fail(notWritable(path, what));
  }
}

const uid = (): string => String(process.getuid?.() ?? '?');

function notWritable(path: string, why: string): string {
  const owner = `${uid()}:${process.getgid?.() ?? '?'}`;
  return (
    `tschk runs as uid ${uid()} and cannot write to ${path} (${why}); give it to that uid: chown ${owner} ${path} ` +
    `(in Docker, on the host folder mounted there, e.g. sudo chown ${owner} ./data)`
  );
}
