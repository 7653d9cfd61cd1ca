import type { DialectName } from './dialect.js';

/**
 * What kind of database failure an error is, decided by tables of error codes per dialect:
 * - `transient`: the database went away or refused for a moment (a restart, a failover, a
 *   deadlock, a busy lock); running the whole transaction again can succeed.
 * - `storage_full`: the disk or the table is full; nothing will be written until space is freed.
 * - `storage`: the database cannot write for another reason of its own (read-only, I/O error).
 * Anything else (a constraint, a syntax error, a bug) is none of these: `undefined`.
 */
export type DbFault = 'transient' | 'storage_full' | 'storage';

interface FaultTable {
  /** Error codes as the driver reports them: SQLSTATE, MySQL errno and code name, SQLite primary code. */
  transient: ReadonlySet<string>;
  full: ReadonlySet<string>;
  storage: ReadonlySet<string>;
  /** SQLSTATE classes (first two characters) that are transient as a whole. */
  transientClasses?: ReadonlySet<string>;
  /** Errors some drivers raise without any code, matched on their message. */
  transientMessages?: RegExp;
}

/** Node's own socket and DNS errors, the same whatever the database. */
const NETWORK = [
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  // A database container that is being replaced has no DNS name for a moment (Docker, Kubernetes).
  'ENOTFOUND',
];

const TABLES: Record<DialectName, FaultTable> = {
  postgres: {
    transient: new Set([
      ...NETWORK,
      '57P01', // admin_shutdown: the server is stopping or the session was terminated
      '57P02', // crash_shutdown
      '57P03', // cannot_connect_now: starting up or shutting down
      '57P05', // idle_session_timeout
      '40001', // serialization_failure
      '40P01', // deadlock_detected
      '55P03', // lock_not_available
      '53300', // too_many_connections
    ]),
    transientClasses: new Set(['08']), // connection_exception
    full: new Set(['53100']), // disk_full
    storage: new Set(['53000', '53200', '58030', '25006']), // insufficient_resources, out_of_memory, io_error, read_only_sql_transaction
    // pg reports a dead connection without a code; "Client was closed" means we closed it ourselves.
    transientMessages:
      /^(Connection terminated|Client has encountered a connection error|Postgres connection has been discarded|timeout exceeded when trying to connect)/,
  },
  mysql: {
    transient: new Set([
      ...NETWORK,
      '1213',
      'ER_LOCK_DEADLOCK',
      '1205',
      'ER_LOCK_WAIT_TIMEOUT',
      '1040',
      'ER_CON_COUNT_ERROR',
      '1053',
      'ER_SERVER_SHUTDOWN',
      '1317',
      'ER_QUERY_INTERRUPTED', // what a statement gets while the server shuts down
      '1927',
      'ER_CONNECTION_KILLED',
      '1158',
      'ER_NET_READ_ERROR',
      '1159',
      'ER_NET_READ_INTERRUPTED',
      '1160',
      'ER_NET_ERROR_ON_WRITE',
      '1161',
      'ER_NET_WRITE_INTERRUPTED',
      '2002',
      'CR_CONNECTION_ERROR',
      '2003',
      'CR_CONN_HOST_ERROR',
      '2006',
      'CR_SERVER_GONE_ERROR',
      '2013',
      'CR_SERVER_LOST',
      '2055',
      'CR_SERVER_LOST_EXTENDED',
      '4031',
      'ER_CLIENT_INTERACTION_TIMEOUT',
      'PROTOCOL_CONNECTION_LOST',
      'PROTOCOL_SEQUENCE_TIMEOUT',
    ]),
    full: new Set(['1021', 'ER_DISK_FULL', '1114', 'ER_RECORD_FILE_FULL']),
    storage: new Set([
      '1030',
      'ER_GET_ERRNO',
      '1036',
      'ER_OPEN_AS_READONLY',
      '1041',
      'ER_OUT_OF_RESOURCES',
      '1290',
      'ER_OPTION_PREVENTS_STATEMENT', // --read-only
      '1792',
      'ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION',
      '1836',
      'ER_READ_ONLY_MODE',
    ]),
    // mysql2, on a connection that already met a fatal error.
    transientMessages: /^Can't (add new command when connection is|write) in closed state/,
  },
  sqlite: {
    transient: new Set(['SQLITE_BUSY', 'SQLITE_LOCKED']),
    full: new Set(['SQLITE_FULL']),
    storage: new Set(['SQLITE_IOERR', 'SQLITE_READONLY', 'SQLITE_CANTOPEN', 'SQLITE_CORRUPT', 'SQLITE_NOTADB', 'SQLITE_PERM']),
  },
};

interface ErrorLike {
  code?: unknown;
  errno?: unknown;
  message?: unknown;
  cause?: unknown;
  errors?: unknown;
}

/** The error and what it wraps (`cause`, an AggregateError's `errors`), outermost first. */
function* chain(err: unknown): Generator<ErrorLike> {
  const seen = new Set<unknown>();
  const queue = [err];
  while (queue.length > 0 && seen.size < 10) {
    const e = queue.shift();
    if (typeof e !== 'object' || e === null || seen.has(e)) continue;
    seen.add(e);
    yield e;
    const { cause, errors } = e as ErrorLike;
    queue.push(cause);
    if (Array.isArray(errors)) queue.push(...(errors as unknown[]));
  }
}

/** SQLite reports extended codes (SQLITE_BUSY_SNAPSHOT, SQLITE_IOERR_WRITE): the table holds primary ones. */
function codesOf(e: ErrorLike): string[] {
  const out: string[] = [];
  if (typeof e.code === 'string' && e.code !== '') {
    out.push(e.code);
    const primary = /^(SQLITE_[A-Z]+)_/.exec(e.code)?.[1];
    if (primary) out.push(primary);
  }
  if (typeof e.errno === 'number' && e.errno > 0) out.push(String(e.errno));
  return out;
}

/** The first error code found on the error or what it wraps, for logs and answers. */
export function dbErrorCode(err: unknown): string | undefined {
  for (const e of chain(err)) {
    if (typeof e.code === 'string' && e.code !== '') return e.code;
    if (typeof e.errno === 'number' && e.errno > 0) return String(e.errno);
  }
  return undefined;
}

export function dbFault(dialect: DialectName, err: unknown): DbFault | undefined {
  const table = TABLES[dialect];
  for (const e of chain(err)) {
    for (const code of codesOf(e)) {
      if (table.full.has(code) || code === 'ENOSPC') return 'storage_full';
      if (table.storage.has(code)) return 'storage';
      if (table.transient.has(code) || table.transientClasses?.has(code.slice(0, 2))) return 'transient';
    }
    if (typeof e.message === 'string' && table.transientMessages?.test(e.message)) return 'transient';
  }
  return undefined;
}

/** A failure that running the whole transaction again, a moment later, can cure. */
export function isTransient(dialect: DialectName, err: unknown): boolean {
  return dbFault(dialect, err) === 'transient';
}

/**
 * One line for a log or an answer: the driver's message and its code. Only for errors `dbFault`
 * knows: their messages name no value (a constraint error's message can quote a token).
 */
export function describeDbError(err: unknown): string {
  const message = (err instanceof Error ? err.message : String(err)).split('\n')[0]!.slice(0, 300);
  const code = dbErrorCode(err);
  return code && !message.includes(code) ? `${message} (${code})` : message;
}

export interface RetryOptions {
  dialect: DialectName;
  /** Tries in all, the first included. */
  attempts: number;
  /** The wait before the second try; it doubles each time, with jitter. */
  baseMs: number;
  /** No wait is longer than this. */
  maxMs?: number;
  /** No new try once this aborts; the last error is thrown. */
  signal?: AbortSignal;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  random?: () => number;
  /** Told before each wait: log it (the code, never SQL or its parameters). */
  onRetry?: (err: unknown, info: { attempt: number; delayMs: number; code: string | undefined }) => void;
}

/** Exponential backoff with jitter: base·2^(attempt-1), scaled by a random factor in [0.5, 1), capped. */
export function retryDelay(attempt: number, o: Pick<RetryOptions, 'baseMs' | 'maxMs' | 'random'>): number {
  const raw = o.baseMs * 2 ** Math.max(0, attempt - 1) * (0.5 + (o.random ?? Math.random)() * 0.5);
  return Math.round(Math.min(raw, o.maxMs ?? Number.POSITIVE_INFINITY));
}

/**
 * Runs `fn` again after a transient failure, up to `attempts` times. `fn` must be a whole
 * transaction (or one statement outside any): a statement inside a transaction that failed
 * cannot be run again on its own, the transaction is gone with the connection.
 */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, o: RetryOptions): Promise<T> {
  const sleep = o.sleep ?? defaultSleep;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= o.attempts || o.signal?.aborted || !isTransient(o.dialect, err)) throw err;
      const delayMs = retryDelay(attempt, o);
      o.onRetry?.(err, { attempt, delayMs, code: dbErrorCode(err) });
      await sleep(delayMs, o.signal);
      if (o.signal?.aborted) throw err;
    }
  }
}

/** Resolves after ms, or early when the signal aborts. `unref`: the wait does not keep the process alive. */
export function defaultSleep(ms: number, signal?: AbortSignal, unref = false): Promise<void> {
  if (ms <= 0 || signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    if (unref) timer.unref();
    signal?.addEventListener('abort', done, { once: true });
  });
}
