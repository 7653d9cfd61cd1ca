import { type Kysely, MysqlAdapter, PostgresAdapter, type RawBuilder, sql } from 'kysely';

// Migrations never import from src/: what they need to know of the three databases is here.

export type Flavour = 'sqlite' | 'postgres' | 'mysql';

export function flavourOf(db: Kysely<unknown>): Flavour {
  const adapter = db.getExecutor().adapter;
  if (adapter instanceof PostgresAdapter) return 'postgres';
  if (adapter instanceof MysqlAdapter) return 'mysql';
  return 'sqlite';
}

/** Native timestamp types, so that users can write `checked_at > now() - interval '1 day'`. */
export function timestampType(flavour: Flavour): any {
  return ({ postgres: 'timestamptz', mysql: sql`datetime(3)`, sqlite: 'text' } as const)[flavour];
}

/** A MySQL server may default to latin1; free-api messages and labels are often Chinese. */
export function createTable(db: Kysely<any>, flavour: Flavour, name: string) {
  const builder = db.schema.createTable(name);
  return flavour === 'mysql' ? builder.modifyEnd(sql`default character set utf8mb4 collate utf8mb4_bin`) : builder;
}

/** SQLite: a table that is its primary key's b-tree (no rowid b-tree beside it). Others: as is. */
export function withoutRowid<T extends { modifyEnd(s: RawBuilder<unknown>): T }>(flavour: Flavour, builder: T): T {
  return flavour === 'sqlite' ? builder.modifyEnd(sql`without rowid`) : builder;
}

/** `INSERT … ` that skips rows whose key exists: the statement's head and tail. */
export function insertIgnoring(flavour: Flavour): { head: string; tail: string } {
  return {
    sqlite: { head: 'INSERT OR IGNORE INTO', tail: '' },
    postgres: { head: 'INSERT INTO', tail: ' ON CONFLICT DO NOTHING' },
    mysql: { head: 'INSERT IGNORE INTO', tail: '' },
  }[flavour];
}

/** `history_checks.verdict`: the codes the view turns back into words. */
export const VERDICT_CODES = { unknown: 0, live: 1, dead: 2, exhausted: 3 } as const;

/**
 * `history_checks.at`: SQLite keeps integer milliseconds since 1970 (6 bytes, not 24 of text, in
 * the table and in its index); PostgreSQL and MySQL their native timestamp (8 and 7 bytes).
 */
export function historyTimeType(flavour: Flavour): any {
  return flavour === 'sqlite' ? 'integer' : timestampType(flavour);
}

/** Milliseconds since 1970 of a column of `historyTimeType`. */
function millis(flavour: Flavour, column: string): string {
  switch (flavour) {
    case 'sqlite':
      return column;
    case 'postgres':
      return `CAST(round(extract(epoch from ${column}) * 1000) AS bigint)`;
    case 'mysql':
      // Independent of the session time zone, unlike UNIX_TIMESTAMP(): the column holds UTC.
      return `(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', ${column}) DIV 1000)`;
  }
}

/**
 * `token_status` as 0.1.0 had it, one row per check, with the same columns and meaning, plus
 * `checked_ms` (milliseconds since 1970; on SQLite the column that an index serves for time
 * ranges, as `checked_at` there is ISO text computed per row). The reason is a subquery, read only
 * by a query that uses it: as a join, SQLite read every row's reason code from the table even for
 * a count over the time index (0.3 s instead of 15 ms for a day of 10,000 tokens' hourly checks).
 */
export function tokenStatusView(flavour: Flavour): string {
  const checkedAt = flavour === 'sqlite' ? `strftime('%Y-%m-%dT%H:%M:%fZ', c.at / 1000.0, 'unixepoch')` : 'c.at';
  const v = VERDICT_CODES;
  // MySQL cannot merge a view with a subquery in its select list into the query (it would copy
  // the whole view into a temporary table first): there the reason is a join, which MariaDB drops
  // when unused.
  const reason = flavour === 'mysql' ? 'r.reason' : '(SELECT r.reason FROM history_reasons r WHERE r.id = c.reason_id)';
  return `CREATE VIEW token_status AS
SELECT c.id AS id, c.run_id AS run_id, c.token_id AS token_id, c.provider_id AS provider_id,
  k.fingerprint AS fingerprint, ${checkedAt} AS checked_at,
  CASE c.verdict WHEN ${v.live} THEN 'live' WHEN ${v.dead} THEN 'dead' WHEN ${v.exhausted} THEN 'exhausted' ELSE 'unknown' END AS verdict,
  ${reason} AS reason, c.http_status AS http_status, c.latency_ms AS latency_ms, c.balance AS balance,
  c.currency AS currency, c.detail AS detail, ${millis(flavour, 'c.at')} AS checked_ms
FROM history_checks c
LEFT JOIN history_tokens k ON k.token_id = c.token_id${flavour === 'mysql' ? '\nLEFT JOIN history_reasons r ON r.id = c.reason_id' : ''}`;
}

/** The 0.1.0 `checked_at` (ISO text on SQLite) as a `history_checks.at` value. */
export function legacyTimeToHistory(flavour: Flavour, column: string): string {
  return flavour === 'sqlite' ? `CAST(round((julianday(${column}) - 2440587.5) * 86400000) AS INTEGER)` : column;
}
