import { resolve } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import type { DatabaseConnection, Dialect, Driver, QueryCompiler, SqliteDatabase, TransactionSettings } from 'kysely';

const REUSED_STATEMENTS = 64;

/**
 * better-sqlite3 compiles a statement at every prepare(), and the statements of a run (a batch of
 * checks, the state updates) are the same texts every time: the last ones used are kept and run
 * again with new values.
 */
export function reusingStatements(sqlite: BetterSqlite3.Database): SqliteDatabase {
  const kept = new Map<string, BetterSqlite3.Statement>();
  return {
    close: () => sqlite.close(),
    prepare(text) {
      // Kysely runs one statement of a handle at a time (a stream holds the handle until it ends), so a kept one is never busy.
      const stmt = kept.get(text) ?? sqlite.prepare(text);
      kept.delete(text);
      kept.set(text, stmt);
      if (kept.size > REUSED_STATEMENTS) kept.delete(kept.keys().next().value!);
      return stmt;
    },
  };
}

/** One queue per SQLite file in this process. */
const queues = new Map<string, { tail: Promise<void> }>();

/**
 * Connections of one process to one SQLite file take turns (two daemons of a test, a CLI command
 * run beside a daemon in the bench). Without this, a statement of one waits for the other's
 * transaction in SQLite's busy handler, which sleeps on the only thread: the transaction it waits
 * for cannot go on, and both stand still until busy_timeout runs out.
 */
export function sharedSqliteFile(inner: Dialect, location: string): Dialect {
  if (location === ':memory:') return inner;
  const key = resolve(location);
  let queue = queues.get(key);
  if (!queue) queues.set(key, (queue = { tail: Promise.resolve() }));
  const turns = queue;
  return {
    createDriver: () => new TakingTurns(inner.createDriver(), turns),
    createQueryCompiler: () => inner.createQueryCompiler(),
    createAdapter: () => inner.createAdapter(),
    createIntrospector: (db) => inner.createIntrospector(db),
  };
}

class TakingTurns implements Driver {
  private readonly done = new Map<DatabaseConnection, () => void>();

  constructor(
    private readonly inner: Driver,
    private readonly queue: { tail: Promise<void> },
  ) {}

  init(): Promise<void> {
    return this.inner.init();
  }

  beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    return this.inner.beginTransaction(connection, settings);
  }

  commitTransaction(connection: DatabaseConnection): Promise<void> {
    return this.inner.commitTransaction(connection);
  }

  rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    return this.inner.rollbackTransaction(connection);
  }

  savepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']): Promise<void> {
    return this.inner.savepoint!(connection, name, compile);
  }

  rollbackToSavepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']): Promise<void> {
    return this.inner.rollbackToSavepoint!(connection, name, compile);
  }

  releaseSavepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']): Promise<void> {
    return this.inner.releaseSavepoint!(connection, name, compile);
  }

  destroy(): Promise<void> {
    return this.inner.destroy();
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    const before = this.queue.tail;
    let finish!: () => void;
    this.queue.tail = new Promise((r) => (finish = r));
    await before;
    try {
      const connection = await this.inner.acquireConnection();
      this.done.set(connection, finish);
      return connection;
    } catch (err) {
      finish();
      throw err;
    }
  }

  async releaseConnection(connection: DatabaseConnection): Promise<void> {
    try {
      await this.inner.releaseConnection(connection);
    } finally {
      this.done.get(connection)?.();
      this.done.delete(connection);
    }
  }
}
