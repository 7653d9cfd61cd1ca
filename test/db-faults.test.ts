// Real faults on real databases: a session killed by the server while a transaction waits between
// two statements, a batch of check results that meets a lock, a database that refuses writes.
import BetterSqlite3 from 'better-sqlite3';
import { sql } from 'kysely';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { openDatabase, type Db } from '../src/db/connect.js';
import { isTransient, withRetry } from '../src/db/errors.js';
import type { CheckRecord } from '../src/db/history.js';
import { listHistory } from '../src/db/history.js';
import { migrateToLatest } from '../src/db/migrate.js';
import { upsertProvider } from '../src/db/providers.js';
import { closeRun, findRun, openRun, zeroCounts } from '../src/db/runs.js';
import { importTokens, listTokens } from '../src/db/tokens.js';
import type { RetryNotice } from '../src/db/write-health.js';
import { closeRunWhenPossible } from '../src/engine/close-run.js';
import { BatchWriter } from '../src/engine/writer.js';
import { createLogger } from '../src/logger.js';
import { CapturedLog } from './helpers/daemon.js';
import { describeEachDialect, freshDatabaseUrl, type Dialect } from './helpers/databases.js';
import { waitFor } from './helpers/wait.js';
import { liveCheck } from './helpers/checks.js';

const until = (what: string, probe: () => boolean, timeoutMs = 5_000) => waitFor(probe, timeoutMs, `waiting for ${what}`, 5);

/** Another session on the same database, as an operator or another program would hold one. */
async function otherSession(dialect: Exclude<Dialect, 'sqlite'>, url: string) {
  if (dialect === 'postgres') {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    return { query: (q: string) => client.query(q).then((r) => r.rows as Array<Record<string, unknown>>), end: () => client.end() };
  }
  const conn = await mysql.createConnection(url);
  return { query: (q: string) => conn.query(q).then(([rows]) => rows as Array<Record<string, unknown>>), end: () => conn.end() };
}

const SESSION_ID = { postgres: 'select pg_backend_pid() as id', mysql: 'select connection_id() as id' } as const;
const KILL = { postgres: (id: number) => `select pg_terminate_backend(${id})`, mysql: (id: number) => `kill ${id}` } as const;

describeEachDialect('database faults', (dialect) => {
  let database: { url: string; drop: () => Promise<void> };
  let db: Db | undefined;
  const connectionErrors: unknown[] = [];
  const retries: RetryNotice[] = [];
  const open = (url = database.url, poolSize?: number) =>
    openDatabase(url, { poolSize, onError: (e) => connectionErrors.push(e), onRetry: (_e, n) => retries.push(n) });

  beforeEach(async () => {
    database = await freshDatabaseUrl(dialect);
    connectionErrors.length = 0;
    retries.length = 0;
  });
  afterEach(async () => {
    await db?.close();
    db = undefined;
    await database.drop();
  });

  it.skipIf(dialect === 'sqlite')(
    'a session killed between two statements of a transaction: told, not fatal; the whole transaction runs again and commits once',
    async () => {
      const server = dialect as Exclude<Dialect, 'sqlite'>;
      db = open();
      await migrateToLatest(db);
      const admin = await otherSession(server, database.url);
      try {
        let attempts = 0;
        await withRetry(
          () =>
            db!.kysely.transaction().execute(async (trx) => {
              attempts++;
              await trx
                .insertInto('providers')
                .values({
                  name: 'deep',
                  kind: 'free-api',
                  check_url: null,
                  enabled: 1,
                  created_at: db!.dialect.time(new Date()),
                  updated_at: db!.dialect.time(new Date()),
                })
                .execute();
              if (attempts === 1) {
                const { rows } = await sql<{ id: number }>`${sql.raw(SESSION_ID[server])}`.execute(trx);
                await admin.query(KILL[server](Number(rows[0]!.id)));
                // The connection is lent out and idle: pg used to emit this error with no listener.
                await until('the lost connection to be told', () => connectionErrors.length > 0);
              }
              await trx.selectFrom('providers').select('name').execute();
            }),
          { dialect, attempts: 3, baseMs: 1 },
        );
        expect(attempts).toBe(2);
        expect(isTransient(dialect, connectionErrors[0])).toBe(true);
        if (dialect === 'postgres') expect(connectionErrors[0]).toMatchObject({ code: '57P01' });
        expect(await db.kysely.selectFrom('providers').select('name').execute()).toEqual([{ name: 'deep' }]);
      } finally {
        await admin.end();
      }
    },
  );

  async function oneCheck(d: Db): Promise<{ record: CheckRecord; tokenId: number }> {
    const p = await upsertProvider(d, { name: 'deep', kind: 'free-api', checkUrl: 'http://127.0.0.1:9/token/check' });
    await importTokens(d, { providerId: p.id, pool: 'default', entries: ['locked-token-Xb81'], source: 'cli' });
    const [t] = await listTokens(d, {});
    const record = liveCheck(t!, p.id);
    return { record, tokenId: t!.id };
  }

  /** Another session holds a write lock on the token, so the batch's transaction fails at once (transient). */
  async function lockToken(tokenId: number): Promise<{ release: () => Promise<void> }> {
    if (dialect === 'sqlite') {
      const holder = new BetterSqlite3(database.url.slice('sqlite:'.length));
      holder.exec('begin immediate');
      return {
        release: async () => {
          if (holder.inTransaction) holder.exec('commit');
          holder.close();
        },
      };
    }
    const holder = await otherSession(dialect, database.url);
    await holder.query('begin');
    await holder.query(`select id from tokens where id = ${tokenId} for update`);
    let released = false;
    return {
      release: async () => {
        if (released) return;
        released = true;
        await holder.query('commit');
        await holder.end();
      },
    };
  }

  /** A database that waits for a lock only briefly, so the test does not wait for the default timeout. */
  async function impatientDb(): Promise<Db> {
    if (dialect === 'postgres') return open(`${database.url}?options=${encodeURIComponent('-c lock_timeout=20')}`);
    const d = open(database.url, 1);
    await sql`${sql.raw(dialect === 'sqlite' ? 'pragma busy_timeout = 20' : 'set session innodb_lock_wait_timeout = 0')}`.execute(d.kysely);
    return d;
  }

  it('the batch writer writes a batch again after a lock it met, and reports each retry with its code', async () => {
    db = await impatientDb();
    await migrateToLatest(db);
    const { record, tokenId } = await oneCheck(db);
    const lock = await lockToken(tokenId);
    let waits = 0;
    const writer = new BatchWriter(db, {}, 500, 60_000, {
      baseMs: 1,
      sleep: async () => {
        if (++waits === 1) await lock.release();
      },
    });
    try {
      await writer.add(record);
      await writer.close();
    } finally {
      await lock.release();
    }
    expect(waits).toBe(1);
    expect(retries).toHaveLength(1);
    expect(retries[0]).toMatchObject({ what: 'check results', attempt: 1 });
    expect(retries[0]!.code).toMatch(/^(SQLITE_BUSY|55P03|ER_LOCK_WAIT_TIMEOUT)$/);
    expect(await listHistory(db, { limit: 10 })).toHaveLength(1);
    expect((await listTokens(db, {}))[0]).toMatchObject({ last_verdict: 'live' });
  });

  it('the batch writer rejects with the real error once its tries are spent, and wrote nothing', async () => {
    db = await impatientDb();
    await migrateToLatest(db);
    const { record, tokenId } = await oneCheck(db);
    const lock = await lockToken(tokenId);
    const writer = new BatchWriter(db, {}, 500, 60_000, { attempts: 3, baseMs: 1, sleep: async () => {} });
    try {
      await writer.add(record);
      const closed = writer.close();
      await expect(closed).rejects.toThrow(/^check results not written after 3 tries: /);
      await expect(closed).rejects.toThrow(
        /database is locked \(SQLITE_BUSY\)|lock timeout \(55P03\)|Lock wait timeout exceeded.*\(ER_LOCK_WAIT_TIMEOUT\)/,
      );
      await expect(writer.add(record)).rejects.toThrow('check results not written');
    } finally {
      await lock.release();
    }
    expect(retries).toHaveLength(2);
    expect(await listHistory(db, { limit: 10 })).toHaveLength(0);
  });
});

describeEachDialect('a run row that cannot be closed', (dialect) => {
  let database: { url: string; drop: () => Promise<void> };
  let db: Db;
  const log = new CapturedLog();
  /** The database refuses every write of this session, as a read-only database or a standby does. */
  const readOnly = (on: boolean) =>
    sql`${sql.raw(
      {
        sqlite: `pragma query_only = ${on ? 1 : 0}`,
        postgres: `set default_transaction_read_only = ${on ? 'on' : 'off'}`,
        mysql: `set session transaction ${on ? 'read only' : 'read write'}`,
      }[dialect],
    )}`.execute(db.kysely);
  // No timer fires in these tests: only a write that succeeds (or the stop) wakes the closer.
  const timing = {
    baseMs: 1,
    maxMs: 1,
    sleep: (_ms: number, signal?: AbortSignal) => new Promise<void>((r) => signal?.addEventListener('abort', () => r())),
  };
  const statusOf = async (id: number) => (await findRun(db, id))?.status;

  beforeEach(async () => {
    database = await freshDatabaseUrl(dialect);
    db = openDatabase(database.url, { poolSize: 1 });
    await migrateToLatest(db);
    log.lines.length = 0;
  });
  afterEach(async () => {
    await readOnly(false);
    await db.close();
    await database.drop();
  });

  it('is closed in the background as soon as the database takes a write again', async () => {
    const logger = createLogger('debug', log.stream);
    const runId = await openRun(db, 'cli', 'all');
    await readOnly(true);
    const close = () => closeRun(db, runId, { status: 'failed', counts: zeroCounts(), error: 'check results not written: boom' });
    expect(await closeRunWhenPossible({ db, logger }, runId, close, timing)).toBe(false);
    expect(await statusOf(runId)).toBe('running');
    expect(db.writes.state).toMatchObject({ writable: false, fault: 'storage' });
    expect(log.text).toContain('the run row cannot be closed now');

    await readOnly(false);
    await upsertProvider(db, { name: 'deep', kind: 'free-api', checkUrl: null });
    await until('the row closed', () => log.text.includes('run row closed now'));
    expect(await findRun(db, runId)).toMatchObject({ status: 'failed', error: 'check results not written: boom' });
    expect(db.writes.state.writable).toBe(true);
  });

  it('stops trying when the daemon stops; the row stays for the next start to close', async () => {
    const logger = createLogger('debug', log.stream);
    const stop = new AbortController();
    const runId = await openRun(db, 'cli', 'all');
    await readOnly(true);
    const close = () => closeRun(db, runId, { status: 'failed', counts: zeroCounts(), error: 'boom' });
    expect(await closeRunWhenPossible({ db, logger, stopSignal: stop.signal }, runId, close, timing)).toBe(false);
    stop.abort();
    await until('the closer to give up', () => log.text.includes('stopping with the run row still open'));

    await readOnly(false);
    await upsertProvider(db, { name: 'deep', kind: 'free-api', checkUrl: null });
    await new Promise((r) => setImmediate(r));
    expect(await statusOf(runId)).toBe('running');
  });

  it('a close that fails for another reason than the database is thrown, as before', async () => {
    const logger = createLogger('debug', log.stream);
    await expect(
      closeRunWhenPossible({ db, logger }, 1, async () => {
        throw new TypeError('a bug');
      }),
    ).rejects.toThrow('a bug');
  });
});
