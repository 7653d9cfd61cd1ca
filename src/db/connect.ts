import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, MysqlDialect, PostgresDialect, SqliteDialect } from 'kysely';
import type Mysql2 from 'mysql2';
import type Pg from 'pg';
import { profiles, type DialectProfile } from './dialect.js';
import { observedDialect } from './observed-dialect.js';
import type { Database } from './schema.js';
import { parseDatabaseUrl, type DatabaseTarget, ACCEPTED_DATABASE_URLS } from './url.js';
import { WriteHealth, type RetryNotice } from './write-health.js';

export interface Db {
  kysely: Kysely<Database>;
  dialect: DialectProfile;
  /** How the last write went; writers report their retries to it. */
  writes: WriteHealth;
  close(): Promise<void>;
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
}

export function openDatabase(url: string, opts: OpenOptions = {}): Db {
  const target = parseDatabaseUrl(url);
  if (!target) throw new Error(`unsupported database URL; accepted: ${ACCEPTED_DATABASE_URLS}`);
  return openTarget<Database>(target, opts);
}

/** Also used for a One-API database, whose tables are not ours. */
export function openTarget<DB>(target: DatabaseTarget, opts: OpenOptions = {}): {
  kysely: Kysely<DB>;
  dialect: DialectProfile;
  writes: WriteHealth;
  close(): Promise<void>;
} {
  const writes = new WriteHealth(target.dialect, { onRetry: opts.onRetry });
  const dialect = createDialect(target, opts.poolSize ?? 10, opts.foreign ?? false, opts.onError ?? (() => {}));
  const kysely = new Kysely<DB>({ dialect: observedDialect(dialect, target.dialect, writes) });
  let closed: Promise<void> | undefined;
  return {
    kysely,
    dialect: profiles[target.dialect],
    writes,
    close: () => (closed ??= kysely.destroy()),
  };
}

// The PostgreSQL and MySQL drivers are loaded only when such a database is opened: on SQLite,
// the default, they would cost ~7 MB of resident memory for nothing.
const require = createRequire(import.meta.url);

function createDialect(target: DatabaseTarget, poolSize: number, foreign: boolean, onError: (err: unknown) => void) {
  switch (target.dialect) {
    case 'sqlite': {
      if (foreign) {
        const sqlite = new BetterSqlite3(target.location, { fileMustExist: true });
        sqlite.pragma('busy_timeout = 5000');
        return new SqliteDialect({ database: sqlite });
      }
      if (target.location !== ':memory:') mkdirSync(dirname(target.location), { recursive: true });
      const sqlite = new BetterSqlite3(target.location);
      sqlite.pragma('journal_mode = WAL');
      sqlite.pragma('busy_timeout = 5000');
      sqlite.pragma('foreign_keys = ON');
      sqlite.pragma('synchronous = NORMAL');
      return new SqliteDialect({ database: sqlite });
    }
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
            oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
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
