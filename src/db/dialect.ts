import { sql, type Kysely, type RawBuilder, type Transaction } from 'kysely';

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
  insertId<DB, T extends keyof DB & string>(
    db: Kysely<DB> | Transaction<DB>,
    table: T,
    values: Record<string, unknown>,
  ): Promise<number>;
}

/** `insertId` is given the table's name at run time: its builder knows no columns. */
function untyped<DB>(db: Kysely<DB> | Transaction<DB>): Kysely<Record<string, Record<string, unknown>>> {
  return db as unknown as Kysely<Record<string, Record<string, unknown>>>;
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
    async insertId(db, table, values) {
      const r = await untyped(db).insertInto(table).values(values).executeTakeFirstOrThrow();
      return Number(r.insertId);
    },
  },
};
