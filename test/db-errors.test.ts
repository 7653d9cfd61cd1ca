import { describe, expect, it } from 'vitest';
import type { DialectName } from '../src/db/dialect.js';
import { dbFault, describeDbError, isTransient, retryDelay, withRetry, type DbFault } from '../src/db/errors.js';
import { WriteHealth } from '../src/db/write-health.js';

/** An error shaped like the one the driver throws: pg's DatabaseError, mysql2's, better-sqlite3's, Node's. */
const err = (message: string, fields: Record<string, unknown> = {}) => Object.assign(new Error(message), fields);

const cases: Array<[DialectName, string, Error, DbFault | undefined]> = [
  // PostgreSQL: SQLSTATE codes
  ['postgres', 'admin shutdown', err('terminating connection due to administrator command', { code: '57P01' }), 'transient'],
  ['postgres', 'crash shutdown', err('terminating connection because of crash of another server process', { code: '57P02' }), 'transient'],
  ['postgres', 'starting up', err('the database system is starting up', { code: '57P03' }), 'transient'],
  ['postgres', 'connection exception class 08', err('connection failure', { code: '08006' }), 'transient'],
  ['postgres', 'deadlock', err('deadlock detected', { code: '40P01' }), 'transient'],
  ['postgres', 'serialization failure', err('could not serialize access due to concurrent update', { code: '40001' }), 'transient'],
  ['postgres', 'lock timeout', err('canceling statement due to lock timeout', { code: '55P03' }), 'transient'],
  ['postgres', 'too many connections', err('sorry, too many clients already', { code: '53300' }), 'transient'],
  ['postgres', 'refused', err('connect ECONNREFUSED 127.0.0.1:5432', { code: 'ECONNREFUSED', errno: -111 }), 'transient'],
  [
    'postgres',
    'refused on every address',
    Object.assign(new AggregateError([err('connect ECONNREFUSED ::1:5432', { code: 'ECONNREFUSED' })], ''), {}),
    'transient',
  ],
  ['postgres', 'DNS name gone during a container restart', err('getaddrinfo ENOTFOUND db', { code: 'ENOTFOUND' }), 'transient'],
  ['postgres', 'socket ended', err('Connection terminated unexpectedly'), 'transient'],
  ['postgres', 'client already broken', err('Client has encountered a connection error and is not queryable'), 'transient'],
  ['postgres', 'pool connect timeout', err('timeout exceeded when trying to connect'), 'transient'],
  ['postgres', 'we closed the pool', err('Client was closed and is not queryable'), undefined],
  ['postgres', 'disk full', err('could not extend file "base/16384/16385": No space left on device', { code: '53100' }), 'storage_full'],
  ['postgres', 'read-only standby', err('cannot execute INSERT in a read-only transaction', { code: '25006' }), 'storage'],
  ['postgres', 'unique violation', err('duplicate key value violates unique constraint', { code: '23505' }), undefined],
  ['postgres', 'syntax error', err('syntax error at or near "selec"', { code: '42601' }), undefined],
  ['postgres', 'a bug', new TypeError("Cannot read properties of undefined (reading 'id')"), undefined],
  // MySQL / MariaDB: mysql2 gives a code name and an errno
  [
    'mysql',
    'deadlock',
    err('Deadlock found when trying to get lock; try restarting transaction', { code: 'ER_LOCK_DEADLOCK', errno: 1213 }),
    'transient',
  ],
  [
    'mysql',
    'lock wait timeout',
    err('Lock wait timeout exceeded; try restarting transaction', { code: 'ER_LOCK_WAIT_TIMEOUT', errno: 1205 }),
    'transient',
  ],
  ['mysql', 'server has gone away', err('MySQL server has gone away', { errno: 2006 }), 'transient'],
  ['mysql', 'lost connection', err('Lost connection to MySQL server during query', { errno: 2013 }), 'transient'],
  ['mysql', 'too many connections', err('Too many connections', { code: 'ER_CON_COUNT_ERROR', errno: 1040 }), 'transient'],
  ['mysql', 'server shutting down', err('Server shutdown in progress', { code: 'ER_SERVER_SHUTDOWN', errno: 1053 }), 'transient'],
  ['mysql', 'connection killed (MariaDB)', err('Connection was killed', { code: 'ER_CONNECTION_KILLED', errno: 1927 }), 'transient'],
  [
    'mysql',
    'mysql2 connection lost',
    err('Connection lost: The server closed the connection.', { code: 'PROTOCOL_CONNECTION_LOST', fatal: true }),
    'transient',
  ],
  ['mysql', 'mysql2 after a fatal error', err("Can't add new command when connection is in closed state", { fatal: true }), 'transient'],
  ['mysql', 'reset', err('read ECONNRESET', { code: 'ECONNRESET', errno: -104 }), 'transient'],
  ['mysql', 'broken pipe', err('write EPIPE', { code: 'EPIPE', errno: -32 }), 'transient'],
  ['mysql', 'timed out', err('connect ETIMEDOUT', { code: 'ETIMEDOUT' }), 'transient'],
  [
    'mysql',
    'disk full',
    err('Disk full (/var/lib/mysql/x); waiting for someone to free some space...', { code: 'ER_DISK_FULL', errno: 1021 }),
    'storage_full',
  ],
  ['mysql', 'table full', err("The table 'token_status' is full", { code: 'ER_RECORD_FILE_FULL', errno: 1114 }), 'storage_full'],
  [
    'mysql',
    'read-only server',
    err('The MariaDB server is running with the --read-only option', { code: 'ER_OPTION_PREVENTS_STATEMENT', errno: 1290 }),
    'storage',
  ],
  [
    'mysql',
    'duplicate entry (quotes the value)',
    err("Duplicate entry 'x' for key 'uq'", { code: 'ER_DUP_ENTRY', errno: 1062 }),
    undefined,
  ],
  [
    'mysql',
    'access denied',
    err("Access denied for user 'tschk'@'localhost'", { code: 'ER_ACCESS_DENIED_ERROR', errno: 1045, fatal: true }),
    undefined,
  ],
  ['mysql', 'pool closed', err('Pool is closed.'), undefined],
  // SQLite: better-sqlite3 gives (extended) result codes
  ['sqlite', 'busy', err('database is locked', { code: 'SQLITE_BUSY' }), 'transient'],
  ['sqlite', 'busy (extended code)', err('database is locked', { code: 'SQLITE_BUSY_SNAPSHOT' }), 'transient'],
  ['sqlite', 'locked', err('database table is locked', { code: 'SQLITE_LOCKED' }), 'transient'],
  ['sqlite', 'full', err('database or disk is full', { code: 'SQLITE_FULL' }), 'storage_full'],
  ['sqlite', 'I/O error (extended code)', err('disk I/O error', { code: 'SQLITE_IOERR_WRITE' }), 'storage'],
  ['sqlite', 'read-only file', err('attempt to write a readonly database', { code: 'SQLITE_READONLY' }), 'storage'],
  ['sqlite', 'constraint', err('UNIQUE constraint failed: tokens.fingerprint', { code: 'SQLITE_CONSTRAINT_UNIQUE' }), undefined],
  [
    'sqlite',
    'rollback after SQLite rolled back itself',
    err('cannot rollback - no transaction is active', { code: 'SQLITE_ERROR' }),
    undefined,
  ],
  // a code of another dialect means nothing here
  ['sqlite', 'a PostgreSQL code', err('deadlock detected', { code: '40P01' }), undefined],
  ['postgres', 'a SQLite code', err('database is locked', { code: 'SQLITE_BUSY' }), undefined],
];

describe('dbFault / isTransient: what a database error means, by a table of codes per dialect', () => {
  for (const [dialect, name, error, want] of cases) {
    it(`${dialect}: ${name} → ${want ?? 'not the database'}`, () => {
      expect(dbFault(dialect, error)).toBe(want);
      expect(isTransient(dialect, error)).toBe(want === 'transient');
    });
  }

  it('looks through the cause a writer wrapped the driver error in', () => {
    const wrapped = new Error('check results not written', {
      cause: err('terminating connection due to administrator command', { code: '57P01' }),
    });
    expect(isTransient('postgres', wrapped)).toBe(true);
  });

  it('describes an error with its code, once', () => {
    expect(describeDbError(err('database or disk is full', { code: 'SQLITE_FULL' }))).toBe('database or disk is full (SQLITE_FULL)');
    expect(describeDbError(err('connect ECONNREFUSED 127.0.0.1:5432', { code: 'ECONNREFUSED' }))).toBe(
      'connect ECONNREFUSED 127.0.0.1:5432',
    );
    expect(describeDbError(err('Lost connection to MySQL server during query', { errno: 2013 }))).toBe(
      'Lost connection to MySQL server during query (2013)',
    );
  });
});

describe('withRetry', () => {
  const transient = () => err('terminating connection due to administrator command', { code: '57P01' });
  const waits: number[] = [];
  const sleep = async (ms: number) => void waits.push(ms);

  it('runs the whole function again after a transient error, with growing waits, and returns its result', async () => {
    waits.length = 0;
    const seen: Array<[number, string | undefined]> = [];
    let calls = 0;
    const result = await withRetry(
      async (attempt) => {
        calls++;
        if (attempt < 4) throw transient();
        return 'committed';
      },
      { dialect: 'postgres', attempts: 6, baseMs: 100, sleep, random: () => 0.999, onRetry: (_e, i) => seen.push([i.attempt, i.code]) },
    );
    expect(result).toBe('committed');
    expect(calls).toBe(4);
    expect(waits).toEqual([100, 200, 400]);
    expect(seen).toEqual([
      [1, '57P01'],
      [2, '57P01'],
      [3, '57P01'],
    ]);
  });

  it('gives up after its attempts with the last error', async () => {
    waits.length = 0;
    let calls = 0;
    const last = err('connect ECONNREFUSED 127.0.0.1:5432', { code: 'ECONNREFUSED' });
    await expect(
      withRetry(
        async () => {
          calls++;
          throw calls < 3 ? transient() : last;
        },
        { dialect: 'postgres', attempts: 3, baseMs: 10, sleep },
      ),
    ).rejects.toBe(last);
    expect(calls).toBe(3);
    expect(waits).toHaveLength(2);
  });

  it('does not run again after an error that is not transient (a full disk, a bug)', async () => {
    for (const e of [err('database or disk is full', { code: 'SQLITE_FULL' }), new TypeError('bug')]) {
      let calls = 0;
      await expect(
        withRetry(
          async () => {
            calls++;
            throw e;
          },
          { dialect: 'sqlite', attempts: 5, baseMs: 10, sleep },
        ),
      ).rejects.toBe(e);
      expect(calls).toBe(1);
    }
  });

  it('stops at once when its signal aborts (shutdown)', async () => {
    const stop = new AbortController();
    let calls = 0;
    await expect(
      withRetry(
        async () => {
          calls++;
          throw transient();
        },
        { dialect: 'postgres', attempts: 10, baseMs: 10, signal: stop.signal, sleep: async () => stop.abort() },
      ),
    ).rejects.toThrow('administrator command');
    expect(calls).toBe(1);
  });

  it('waits base·2^n with jitter in [0.5, 1), capped', () => {
    expect(retryDelay(1, { baseMs: 250, random: () => 0 })).toBe(125);
    expect(retryDelay(3, { baseMs: 250, random: () => 0.5 })).toBe(750);
    expect(retryDelay(9, { baseMs: 250, maxMs: 4000, random: () => 0.9 })).toBe(4000);
  });
});

describe('WriteHealth', () => {
  it('turns unwritable on a lasting failure of the database (not a constraint, not a passing lock), keeps when it began, and clears on the next success', async () => {
    let now = new Date('2025-01-01T00:00:00Z');
    const w = new WriteHealth('sqlite', { now: () => now });
    expect(w.state.writable).toBe(true);

    expect(w.failed(err('UNIQUE constraint failed: tokens.fingerprint', { code: 'SQLITE_CONSTRAINT_UNIQUE' }))).toBe(false);
    expect(w.failed(err('database is locked', { code: 'SQLITE_BUSY' }))).toBe(false);
    expect(w.state.writable).toBe(true);

    expect(w.failed(err('database or disk is full', { code: 'SQLITE_FULL' }))).toBe(true);
    now = new Date('2025-01-01T00:05:00Z');
    w.failed(err('database or disk is full', { code: 'SQLITE_FULL' }));
    expect(w.state).toMatchObject({
      writable: false,
      fault: 'storage_full',
      code: 'SQLITE_FULL',
      reason: 'database or disk is full (SQLITE_FULL)',
    });
    expect(w.state.failingSince).toEqual(new Date('2025-01-01T00:00:00Z'));

    const woken = w.nextSuccess();
    w.succeeded();
    await woken;
    expect(w.state).toEqual({ writable: true, lastSuccessAt: now });
  });
});
