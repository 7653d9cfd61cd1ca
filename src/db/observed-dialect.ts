import type {
  CompiledQuery,
  DatabaseConnection,
  DatabaseIntrospector,
  Dialect,
  DialectAdapter,
  Driver,
  QueryCompiler,
  QueryResult,
  TransactionSettings,
} from 'kysely';
import type { DialectName } from './dialect.js';
import { isTransient } from './errors.js';
import type { WriteHealth } from './write-health.js';

/**
 * Any dialect, with two things added at the driver, the one place every query passes:
 * - the outcome of every write (a commit, or a write statement outside a transaction) is told to
 *   `writes`, which /healthz reads;
 * - a ROLLBACK that fails because the transaction is already gone does not replace the error that
 *   caused it. SQLite rolls back by itself on SQLITE_FULL (and on some I/O errors), so Kysely's
 *   ROLLBACK then fails with "cannot rollback - no transaction is active"; on PostgreSQL and
 *   MySQL a lost connection took its transaction with it (and the pool discards that connection).
 */
export function observedDialect(inner: Dialect, name: DialectName, writes: WriteHealth, onStatement?: OnStatement): Dialect {
  return {
    createDriver: (): Driver => new ObservedDriver(inner.createDriver(), name, writes, onStatement),
    createQueryCompiler: (): QueryCompiler => inner.createQueryCompiler(),
    createAdapter: (): DialectAdapter => inner.createAdapter(),
    createIntrospector: (db): DatabaseIntrospector => inner.createIntrospector(db),
  };
}

/** Told of every statement before it is sent (tests count them, or tell them apart). */
export type OnStatement = (sql: string, parameters: readonly unknown[]) => void;

const fromDriver = new WeakSet<object>();

/** Tags an error as the database's, so that it can later be told from, say, a socket error of an upstream. */
function tagged(err: unknown): unknown {
  if (typeof err === 'object' && err !== null) fromDriver.add(err);
  return err;
}

/** Whether the error (or one it wraps as its cause) came out of a database driver. */
export function isDatabaseError(err: unknown): boolean {
  for (let e = err, depth = 0; typeof e === 'object' && e !== null && depth < 10; e = (e as { cause?: unknown }).cause, depth++) {
    if (fromDriver.has(e)) return true;
  }
  return false;
}

const WRITE_NODES = new Set(['InsertQueryNode', 'UpdateQueryNode', 'DeleteQueryNode', 'MergeQueryNode']);
const WRITE_SQL = /^\s*(insert|update|delete|replace|merge)\b/i;

function isWrite(q: CompiledQuery): boolean {
  return WRITE_NODES.has(q.query.kind) || (q.query.kind === 'RawNode' && WRITE_SQL.test(q.sql));
}

class ObservedConnection implements DatabaseConnection {
  inTransaction = false;

  constructor(
    readonly inner: DatabaseConnection,
    private readonly writes: WriteHealth,
    private readonly onStatement?: OnStatement,
  ) {}

  async executeQuery<R>(q: CompiledQuery): Promise<QueryResult<R>> {
    this.onStatement?.(q.sql, q.parameters);
    let result: QueryResult<R>;
    try {
      result = await this.inner.executeQuery<R>(q);
    } catch (err) {
      // Inside a transaction any failed statement is a failed write: the transaction is lost.
      if (this.inTransaction || isWrite(q)) this.writes.failed(err);
      throw tagged(err);
    }
    if (!this.inTransaction && isWrite(q)) this.writes.succeeded();
    return result;
  }

  async *streamQuery<R>(q: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    this.onStatement?.(q.sql, q.parameters);
    try {
      yield* this.inner.streamQuery<R>(q, chunkSize);
    } catch (err) {
      throw tagged(err);
    }
  }
}

class ObservedDriver implements Driver {
  private readonly connections = new WeakMap<DatabaseConnection, ObservedConnection>();

  constructor(
    private readonly inner: Driver,
    private readonly name: DialectName,
    private readonly writes: WriteHealth,
    private readonly onStatement?: OnStatement,
  ) {}

  init(): Promise<void> {
    return this.inner.init();
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    let raw: DatabaseConnection;
    try {
      raw = await this.inner.acquireConnection();
    } catch (err) {
      throw tagged(err);
    }
    let c = this.connections.get(raw);
    if (!c) this.connections.set(raw, (c = new ObservedConnection(raw, this.writes, this.onStatement)));
    return c;
  }

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    const c = connection as ObservedConnection;
    try {
      await this.inner.beginTransaction(c.inner, settings);
    } catch (err) {
      this.writes.failed(err);
      throw tagged(err);
    }
    c.inTransaction = true;
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    const c = connection as ObservedConnection;
    try {
      await this.inner.commitTransaction(c.inner);
    } catch (err) {
      this.writes.failed(err);
      throw tagged(err);
    }
    c.inTransaction = false;
    this.writes.succeeded();
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    const c = connection as ObservedConnection;
    try {
      await this.inner.rollbackTransaction(c.inner);
    } catch (err) {
      if (!this.transactionIsGone(err)) throw tagged(err);
    } finally {
      c.inTransaction = false;
    }
  }

  private transactionIsGone(err: unknown): boolean {
    return (
      (err instanceof Error && /no transaction is active/.test(err.message)) || (this.name !== 'sqlite' && isTransient(this.name, err))
    );
  }

  savepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']): Promise<void> {
    return this.required('savepoint').call(this.inner, (connection as ObservedConnection).inner, name, compile);
  }

  rollbackToSavepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']): Promise<void> {
    return this.required('rollbackToSavepoint').call(this.inner, (connection as ObservedConnection).inner, name, compile);
  }

  releaseSavepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']): Promise<void> {
    return this.required('releaseSavepoint').call(this.inner, (connection as ObservedConnection).inner, name, compile);
  }

  private required(method: 'savepoint' | 'rollbackToSavepoint' | 'releaseSavepoint') {
    // eslint-disable-next-line @typescript-eslint/unbound-method -- the callers bind it: `.call(this.inner, …)`
    const fn = this.inner[method];
    if (!fn) throw new Error(`the ${this.name} driver does not support ${method}`);
    return fn;
  }

  releaseConnection(connection: DatabaseConnection): Promise<void> {
    const c = connection as ObservedConnection;
    c.inTransaction = false;
    return this.inner.releaseConnection(c.inner);
  }

  destroy(): Promise<void> {
    return this.inner.destroy();
  }
}
