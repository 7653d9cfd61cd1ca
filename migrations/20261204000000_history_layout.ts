import { type CreateIndexBuilder, type Kysely, sql } from 'kysely';
import {
  createTable,
  flavourOf,
  historyTimeType,
  insertIgnoring,
  legacyTimeToHistory,
  timestampType,
  tokenStatusView,
  VERDICT_CODES,
  withoutRowid,
} from './dialect.js';

/**
 * History that lasts. A check costs ~60 bytes instead of ~220: integer codes instead of text
 * (verdict, reason), SQLite time in integer milliseconds, the fingerprint and provider once per
 * token (`history_tokens`, kept after the token is removed), one table ordered by (token_id, at) —
 * a token's rows sit together, so retention deletes them per token cheaply — and one time index.
 * `token_status` becomes a view with the columns and meaning it had. `token_daily` (a row per token
 * and UTC day) and `token_events` (state changes) are kept far longer than the raw checks.
 *
 * The 0.1.0 rows are copied in here, in one statement per table (SQLite and PostgreSQL run the
 * whole migration in one transaction; on MySQL every step is safe to run again after a crash).
 */
export async function up(db: Kysely<any>): Promise<void> {
  const flavour = flavourOf(db);
  const ts = timestampType(flavour);
  const table = (name: string) => createTable(db, flavour, name).ifNotExists();
  // MySQL 8 has no CREATE INDEX IF NOT EXISTS (MariaDB has): there, an existing index is error 1061.
  const index = async (name: string, build: (b: CreateIndexBuilder) => CreateIndexBuilder<any>) => {
    if (flavour !== 'mysql') return build(db.schema.createIndex(name).ifNotExists()).execute();
    try {
      await build(db.schema.createIndex(name)).execute();
    } catch (err) {
      if ((err as { errno?: number }).errno !== 1061) throw err;
    }
  };
  const id = (big: boolean): any =>
    flavour === 'postgres' ? (big ? 'bigserial' : 'serial') : flavour === 'mysql' && big ? 'bigint' : 'integer';
  const small: any = flavour === 'mysql' ? sql`tinyint` : flavour === 'postgres' ? 'smallint' : 'integer';

  await table('history_reasons')
    .addColumn('id', id(false), (c) => (flavour === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement()))
    .addColumn('reason', 'varchar(64)', (c) => c.notNull().unique())
    .execute();

  await table('history_tokens')
    .addColumn('token_id', 'integer', (c) => c.primaryKey())
    .addColumn('provider_id', 'integer', (c) => c.notNull())
    .addColumn('pool', 'varchar(64)')
    .addColumn('fingerprint', 'varchar(12)', (c) => c.notNull())
    .execute();
  await index('history_tokens_fingerprint', (b) => b.on('history_tokens').column('fingerprint'));

  await withoutRowid(
    flavour,
    table('history_checks')
      .addColumn('token_id', 'integer', (c) => c.notNull())
      .addColumn('at', historyTimeType(flavour), (c) => c.notNull())
      .addColumn('id', 'bigint', (c) => c.notNull())
      .addColumn('provider_id', 'integer', (c) => c.notNull())
      .addColumn('run_id', 'integer')
      .addColumn('verdict', small, (c) => c.notNull())
      .addColumn('reason_id', 'integer', (c) => c.notNull())
      .addColumn('http_status', flavour === 'sqlite' ? 'integer' : 'smallint')
      .addColumn('latency_ms', 'integer')
      .addColumn('balance', 'varchar(64)')
      .addColumn('currency', 'varchar(16)')
      .addColumn('detail', 'varchar(512)')
      // id last: two checks of one token in the same millisecond are two rows.
      .addPrimaryKeyConstraint('history_checks_pk', ['token_id', 'at', 'id']),
  ).execute();
  // Time ranges (the last day; a run's rows, from the run's start), covering verdict, provider
  // and run: counting the dead answers of a day per provider, or of a run, reads this index only.
  await index('history_checks_at', (b) => b.on('history_checks').columns(['at', 'verdict', 'provider_id', 'run_id']));

  // Balances are a few keys among many tokens: "every key's balance over time" reads only these.
  // (MySQL has no partial index; there that query reads the time range.)
  if (flavour !== 'mysql') {
    await index('history_checks_balance', (b) => b.on('history_checks').column('at').where(sql.ref('balance'), 'is not', null));
  }
  // Where a run's checks begin in the time index: a run's rows are found from there, without an
  // index on run_id (15 bytes a check).
  const columns = await db.introspection.getTables().then((ts) => ts.find((t) => t.name === 'check_runs')?.columns ?? []);
  if (!columns.some((c) => c.name === 'history_from'))
    await db.schema.alterTable('check_runs').addColumn('history_from', historyTimeType(flavour)).execute();

  await table('history_state')
    .addColumn('name', 'varchar(32)', (c) => c.primaryKey())
    .addColumn('value', 'bigint')
    .execute();

  await withoutRowid(
    flavour,
    table('token_daily')
      .addColumn('token_id', 'integer', (c) => c.notNull())
      // 'YYYY-MM-DD' (UTC) on every database: compares as text, and no driver turns it into a local midnight.
      .addColumn('day', 'varchar(10)', (c) => c.notNull())
      .addColumn('provider_id', 'integer', (c) => c.notNull())
      .addColumn('checks', 'integer', (c) => c.notNull())
      .addColumn('live', 'integer', (c) => c.notNull())
      .addColumn('dead', 'integer', (c) => c.notNull())
      .addColumn('exhausted', 'integer', (c) => c.notNull())
      .addColumn('unknown', 'integer', (c) => c.notNull())
      .addColumn('latency_min_ms', 'integer')
      .addColumn('latency_avg_ms', 'integer')
      .addColumn('latency_max_ms', 'integer')
      .addColumn('last_reason', 'varchar(64)')
      .addColumn('last_balance', 'varchar(64)')
      .addColumn('last_currency', 'varchar(16)')
      .addPrimaryKeyConstraint('token_daily_pk', ['token_id', 'day']),
  ).execute();
  // Covering: a provider's days add up from this index alone.
  await index('token_daily_provider_day', (b) =>
    b.on('token_daily').columns(['provider_id', 'day', 'checks', 'live', 'dead', 'exhausted', 'unknown']),
  );

  await table('token_events')
    .addColumn('id', id(true), (c) => (flavour === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement()))
    .addColumn('at', ts, (c) => c.notNull())
    .addColumn('token_id', 'integer')
    .addColumn('fingerprint', 'varchar(12)')
    .addColumn('provider_id', 'integer')
    .addColumn('pool', 'varchar(64)')
    .addColumn('run_id', 'integer')
    .addColumn('event', 'varchar(32)', (c) => c.notNull())
    .addColumn('reason', 'varchar(255)')
    .addColumn('actor', 'varchar(16)')
    .execute();
  await index('token_events_token', (b) => b.on('token_events').columns(['token_id', 'id']));
  await index('token_events_fingerprint', (b) => b.on('token_events').column('fingerprint'));
  await index('token_events_run', (b) => b.on('token_events').column('run_id'));
  await index('token_events_at', (b) => b.on('token_events').column('at'));

  const relations = await db.introspection.getTables();
  const legacy = relations.some((t) => t.name === 'token_status' && !t.isView);
  if (legacy) await copyLegacyRows(db, flavour);
  const max = await db
    .selectFrom('history_checks')
    .select((eb) => eb.fn.max('id').as('max'))
    .executeTakeFirst();
  const { head, tail } = insertIgnoring(flavour);
  await sql.raw(`${head} history_state (name, value) VALUES ('next_check_id', ${Number(max?.max ?? 0) + 1})${tail}`).execute(db);
  if (legacy) {
    await sql
      .raw(
        `UPDATE check_runs SET history_from = (SELECT min(c.at) FROM history_checks c WHERE c.run_id = check_runs.id) WHERE history_from IS NULL`,
      )
      .execute(db);
    await db.schema.dropTable('token_status').execute();
  }
  if (!relations.some((t) => t.name === 'token_status' && t.isView)) await sql.raw(tokenStatusView(flavour)).execute(db);
}

/** Every 0.1.0 row, with its id, into the compact tables. */
async function copyLegacyRows(db: Kysely<any>, flavour: ReturnType<typeof flavourOf>): Promise<void> {
  const { head, tail } = insertIgnoring(flavour);
  const v = VERDICT_CODES;
  await sql.raw(`${head} history_reasons (reason) SELECT DISTINCT reason FROM token_status${tail}`).execute(db);
  await sql
    .raw(
      `${head} history_tokens (token_id, provider_id, pool, fingerprint)
SELECT s.token_id, s.provider_id, coalesce(max(t.pool), max(a.pool)), s.fingerprint
FROM (SELECT token_id, max(provider_id) AS provider_id, max(fingerprint) AS fingerprint FROM token_status GROUP BY token_id) s
LEFT JOIN tokens t ON t.id = s.token_id
LEFT JOIN token_archive a ON a.token_id = s.token_id
GROUP BY s.token_id, s.provider_id, s.fingerprint${tail}`,
    )
    .execute(db);
  await sql
    .raw(
      `${head} history_checks (token_id, at, id, provider_id, run_id, verdict, reason_id, http_status, latency_ms, balance, currency, detail)
SELECT s.token_id, ${legacyTimeToHistory(flavour, 's.checked_at')}, s.id, s.provider_id, s.run_id,
  CASE s.verdict WHEN 'live' THEN ${v.live} WHEN 'dead' THEN ${v.dead} WHEN 'exhausted' THEN ${v.exhausted} ELSE ${v.unknown} END,
  r.id, s.http_status, s.latency_ms, s.balance, s.currency, s.detail
FROM token_status s JOIN history_reasons r ON r.reason = s.reason${tail}`,
    )
    .execute(db);
}

/** Back to one `token_status` table with every raw row (a downgrade is done by hand, with tschk stopped). */
export async function down(db: Kysely<any>): Promise<void> {
  const flavour = flavourOf(db);
  await sql.raw('DROP VIEW token_status').execute(db);
  await createTable(db, flavour, 'token_status')
    .addColumn('id', flavour === 'postgres' ? 'bigserial' : flavour === 'mysql' ? 'bigint' : 'integer', (c) =>
      flavour === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement(),
    )
    .addColumn('run_id', 'integer')
    .addColumn('token_id', 'integer', (c) => c.notNull())
    .addColumn('provider_id', 'integer', (c) => c.notNull())
    .addColumn('fingerprint', 'varchar(12)', (c) => c.notNull())
    .addColumn('checked_at', timestampType(flavour), (c) => c.notNull())
    .addColumn('verdict', 'varchar(16)', (c) => c.notNull())
    .addColumn('reason', 'varchar(64)', (c) => c.notNull())
    .addColumn('http_status', 'integer')
    .addColumn('latency_ms', 'integer')
    .addColumn('balance', 'varchar(64)')
    .addColumn('currency', 'varchar(16)')
    .addColumn('detail', 'varchar(512)')
    .execute();
  const v = VERDICT_CODES;
  const checkedAt = flavour === 'sqlite' ? `strftime('%Y-%m-%dT%H:%M:%fZ', c.at / 1000.0, 'unixepoch')` : 'c.at';
  await sql
    .raw(
      `INSERT INTO token_status (id, run_id, token_id, provider_id, fingerprint, checked_at, verdict, reason, http_status, latency_ms, balance, currency, detail)
SELECT c.id, c.run_id, c.token_id, c.provider_id, k.fingerprint, ${checkedAt},
  CASE c.verdict WHEN ${v.live} THEN 'live' WHEN ${v.dead} THEN 'dead' WHEN ${v.exhausted} THEN 'exhausted' ELSE 'unknown' END,
  r.reason, c.http_status, c.latency_ms, c.balance, c.currency, c.detail
FROM history_checks c JOIN history_tokens k ON k.token_id = c.token_id JOIN history_reasons r ON r.id = c.reason_id`,
    )
    .execute(db);
  if (flavour === 'postgres') {
    await sql
      .raw(`SELECT setval(pg_get_serial_sequence('token_status', 'id'), greatest((SELECT max(id) FROM token_status), 1))`)
      .execute(db);
  }
  for (const [name, cols] of [
    ['token_status_token_checked', ['token_id', 'checked_at']],
    ['token_status_provider_checked', ['provider_id', 'checked_at']],
    ['token_status_checked_at', ['checked_at']],
    ['token_status_run', ['run_id']],
  ] as const) {
    await db.schema
      .createIndex(name)
      .on('token_status')
      .columns([...cols])
      .execute();
  }
  await db.schema.alterTable('check_runs').dropColumn('history_from').execute();
  for (const name of ['token_events', 'token_daily', 'history_state', 'history_checks', 'history_tokens', 'history_reasons']) {
    await db.schema.dropTable(name).execute();
  }
}
