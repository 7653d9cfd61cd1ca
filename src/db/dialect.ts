import type { Checkpointer } from './checkpointer.js';
import { sql, type InsertQueryBuilder, type Kysely, type QueryExecutorProvider, type RawBuilder, type Transaction } from 'kysely';

export type DialectName = 'sqlite' | 'postgres' | 'mysql';

/**
 * Every difference between the three databases that the code above `db/` must not know about.
 * - SQLite stores timestamps as ISO-8601 UTC text; PostgreSQL and MySQL take and give Date.
 * - MySQL has no RETURNING: the id of an insert comes from `insertId`.
 * - PostgreSQL returns bigint (count(*), bigserial) as a string: read numbers through `num`.
 * - SQLite is one connection: a transaction holds the whole database, so keep them short.
 * - Booleans (One-API's `abilities.enabled`): `true` on PostgreSQL, `1` on MySQL and SQLite
 *   (better-sqlite3 cannot bind a JS boolean).
 * - Placeholders in hand-written SQL: `$1, $2, …` on PostgreSQL, `?` on the others.
 * - The database's own clock (`clock`), so that leases held by processes on different hosts
 *   expire by one clock: `clock_timestamp()` on PostgreSQL (`now()` is the transaction's start),
 *   `UTC_TIMESTAMP(3)` on MySQL (columns hold UTC), `strftime(…'now')` on SQLite in the same
 *   ISO-8601 text as `time()` writes, so that text comparison orders it correctly.
 * - MySQL evaluates an UPDATE's SET list left to right with the values already set; PostgreSQL
 *   and SQLite read the old row throughout. A SET item that reads another column goes first.
 * - History time (`history_checks.at`, `historyTime`): integer milliseconds on SQLite (6 bytes a
 *   row instead of 24 of text, in the table and in its index); the native timestamp elsewhere.
 * - An insert that skips rows whose key exists: `INSERT OR IGNORE` on SQLite, `INSERT IGNORE`
 *   on MySQL, `ON CONFLICT DO NOTHING` on PostgreSQL (`ignoreDuplicates`).
 * - SQLite's file upkeep (`upkeep`): WAL checkpoints and incremental vacuum; nothing elsewhere.
 */
export interface DialectProfile {
  name: DialectName;
  // Properties, not methods: none uses `this`, so callers may take them off the profile.
  time: (d: Date) => Date | string;
  readTime: (v: unknown) => Date | null;
  bool: (b: boolean) => boolean | number;
  /** The placeholder of the n-th bound value (from 1). */
  placeholder: (n: number) => string;
  /** The database server's time, `offsetMs` from now, as the dialect stores timestamps. */
  clock: (offsetMs?: number) => RawBuilder<Date | string>;
  /** A `history_checks.at` value. */
  historyTime: (d: Date) => number | Date;
  ignoreDuplicates: <DB, T extends keyof DB & string, O>(q: InsertQueryBuilder<DB, T, O>) => InsertQueryBuilder<DB, T, O>;
  /** SQLite only: what keeps its file and WAL bounded while retention deletes. */
  fileUpkeep?: FileUpkeep;
  insertId<DB, T extends keyof DB & string>(db: Kysely<DB> | Transaction<DB>, table: T, values: Record<string, unknown>): Promise<number>;
}

/** Checkpoints run by another thread (`FileUpkeep.offThreadCheckpoints`). */
export interface OffThreadCheckpoints {
  /** Settles when the WAL has been copied back (as far as readers and writers let it). */
  checkpoint(): Promise<void>;
  stop(): Promise<void>;
}

/** An SQLite file's upkeep; every call but the checkpoints is one short statement. */
export interface FileUpkeep {
  /** The WAL shrinks back to this size after a checkpoint that emptied it. */
  limitWal(db: QueryExecutorProvider, bytes: number): Promise<void>;
  /**
   * Until stopped, the WAL is copied back into the file by another thread, when asked (its fsyncs
   * then do not block this one), and this connection no longer does so at its commits. Stopping
   * copies it back once more, unless the thread failed: this connection's commits then copy it
   * again, as before. Nothing is started for a database without a file.
   */
  offThreadCheckpoints(
    db: QueryExecutorProvider,
    onFailure: (err: unknown) => void,
    answerMs?: number,
  ): Promise<OffThreadCheckpoints | undefined>;
  /** Free pages the file could give back, when it was made with incremental vacuum (else 0). */
  freePages(db: QueryExecutorProvider): Promise<number>;
  /** Gives one free page back to the file system (~20 µs). */
  vacuumPage(db: QueryExecutorProvider): Promise<void>;
}

const sqliteUpkeep: FileUpkeep = {
  async limitWal(db, bytes) {
    await sql.raw(`PRAGMA journal_size_limit = ${Math.floor(bytes)}`).execute(db);
  },
  async offThreadCheckpoints(db, onFailure, answerMs) {
    const files = await sql<{ name: string; file: string }>`PRAGMA database_list`.execute(db);
    const path = files.rows.find((r) => r.name === 'main')?.file;
    if (!path) return undefined;
    // Started at the first checkpoint asked for: a pass with next to nothing to do starts no thread.
    let started: Promise<{ worker: Checkpointer; restore: () => Promise<unknown> } | undefined> | undefined;
    const start = async () => {
      const { startCheckpointer } = await import('./checkpointer.js');
      const sync = await sql<{ synchronous: number }>`PRAGMA synchronous`.execute(db);
      // SQLite's default, which tschk's connections keep (not the value read now: after a restore
      // that failed, that would be the 0 of a pass, for good).
      const restore = () => sql`PRAGMA wal_autocheckpoint = 1000`.execute(db);
      let worker: Checkpointer;
      try {
        worker = startCheckpointer(
          { path, synchronous: num(sync.rows[0]?.synchronous ?? 1) },
          (err) => {
            onFailure(err);
            // stop() sets it again, and throws if it still cannot.
            void restore().catch(() => undefined);
          },
          answerMs,
        );
      } catch (err) {
        // No thread (Node could not start one): this connection goes on checkpointing at its commits.
        onFailure(err);
        return undefined;
      }
      try {
        await sql`PRAGMA wal_autocheckpoint = 0`.execute(db);
      } catch (err) {
        await worker.stop();
        throw err;
      }
      return { worker, restore };
    };
    return {
      async checkpoint() {
        await (await (started ??= start()))?.worker.checkpoint();
      },
      async stop() {
        const thread = started && (await started);
        // A pass too short to have asked for a copy dirtied few pages: they are copied here.
        if (!thread) return void (await sql`PRAGMA wal_checkpoint(PASSIVE)`.execute(db));
        await thread.worker.stop();
        await thread.restore();
      },
    };
  },
  async freePages(db) {
    const mode = await sql<{ auto_vacuum: number }>`PRAGMA auto_vacuum`.execute(db);
    if (num(mode.rows[0]?.auto_vacuum) !== 2) return 0;
    const free = await sql<{ freelist_count: number }>`PRAGMA freelist_count`.execute(db);
    return num(free.rows[0]?.freelist_count);
  },
  async vacuumPage(db) {
    // The driver steps the pragma once, and each step frees one page.
    await sql`PRAGMA incremental_vacuum(1)`.execute(db);
  },
};

/** `insertId` is given the table's name at run time: its builder knows no columns. */
function untyped<DB>(db: Kysely<DB> | Transaction<DB>): Kysely<Record<string, Record<string, unknown>>> {
  return db as unknown as Kysely<Record<string, Record<string, unknown>>>;
}

/** An id written into SQL text (a `CASE id WHEN …` arm, an `IN (…)` list): it must be an integer. */
export function idLiteral(id: number): string {
  if (!Number.isSafeInteger(id)) throw new Error(`not an id: ${id}`);
  return String(id);
}

export function num(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'string') return Number(v);
  return 0;
}

function readDate(v: unknown): Date | null {
  if (v === null || v === undefined) return null;
  if (v instanceof Date) return v;
  // SQLite history time: milliseconds since 1970.
  if (typeof v === 'number') return Number.isFinite(v) ? new Date(v) : null;
  if (typeof v === 'string') {
    // MySQL DATETIME read as text (dateStrings) or SQLite: both are UTC.
    const d = new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(v) ? v : v.replace(' ', 'T') + 'Z');
    return Number.isNaN(d.getTime()) ? null : d;
  }
  return null;
}

export const profiles: Record<DialectName, DialectProfile> = {
  sqlite: {
    name: 'sqlite',
    time: (d) => d.toISOString(),
    readTime: readDate,
    bool: (b) => (b ? 1 : 0),
    placeholder: () => '?',
    clock: (offsetMs = 0) => sql<string>`strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ${`${offsetMs / 1000} seconds`})`,
    historyTime: (d) => d.getTime(),
    ignoreDuplicates: (q) => q.orIgnore(),
    fileUpkeep: sqliteUpkeep,
    async insertId(db, table, values) {
      const r = await untyped(db).insertInto(table).values(values).executeTakeFirstOrThrow();
      return Number(r.insertId);
    },
  },
  postgres: {
    name: 'postgres',
    time: (d) => d,
    readTime: readDate,
    bool: (b) => b,
    placeholder: (n) => `$${n}`,
    clock: (offsetMs = 0) => sql<Date>`(clock_timestamp() + cast(${Math.round(offsetMs)} as integer) * interval '1 millisecond')`,
    historyTime: (d) => d,
    ignoreDuplicates: (q) => q.onConflict((oc) => oc.doNothing()),
    async insertId(db, table, values) {
      const r = await untyped(db).insertInto(table).values(values).returning('id').executeTakeFirstOrThrow();
      return num(r.id);
    },
  },
  mysql: {
    name: 'mysql',
    time: (d) => d,
    readTime: readDate,
    bool: (b) => (b ? 1 : 0),
    placeholder: () => '?',
    clock: (offsetMs = 0) => sql<Date>`timestampadd(microsecond, ${Math.round(offsetMs) * 1000}, utc_timestamp(3))`,
    historyTime: (d) => d,
    ignoreDuplicates: (q) => q.ignore(),
    async insertId(db, table, values) {
      const r = await untyped(db).insertInto(table).values(values).executeTakeFirstOrThrow();
      return Number(r.insertId);
    },
  },
};
