import type { ColumnDefinitionBuilder, Kysely } from 'kysely';
import { createTable, flavourOf, timestampType } from './dialect.js';

export async function up(db: Kysely<any>): Promise<void> {
  const flavour = flavourOf(db);
  const ts = timestampType(flavour);
  // AUTOINCREMENT on SQLite: a reused token id would attach old history to a new token.
  const idType = (big = false): any =>
    flavour === 'postgres' ? (big ? 'bigserial' : 'serial') : flavour === 'mysql' && big ? 'bigint' : 'integer';
  const table = (name: string) => createTable(db, flavour, name);
  const idBuild = (c: ColumnDefinitionBuilder) => (flavour === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement());

  await table('providers')
    .addColumn('id', idType(), idBuild)
    .addColumn('name', 'varchar(64)', (c) => c.notNull().unique())
    .addColumn('kind', 'varchar(32)', (c) => c.notNull())
    .addColumn('check_url', 'varchar(1024)')
    .addColumn('enabled', 'smallint', (c) => c.notNull().defaultTo(1))
    .addColumn('concurrency', 'integer')
    .addColumn('created_at', ts, (c) => c.notNull())
    .addColumn('updated_at', ts, (c) => c.notNull())
    .execute();

  await table('tokens')
    .addColumn('id', idType(), idBuild)
    .addColumn('provider_id', 'integer', (c) => c.notNull().references('providers.id'))
    .addColumn('pool', 'varchar(64)', (c) => c.notNull())
    .addColumn('position', 'integer', (c) => c.notNull())
    .addColumn('secret', 'text', (c) => c.notNull())
    .addColumn('fingerprint', 'varchar(12)', (c) => c.notNull())
    .addColumn('label', 'varchar(255)')
    .addColumn('source', 'varchar(16)', (c) => c.notNull())
    .addColumn('source_ref', 'varchar(512)')
    .addColumn('expect', 'varchar(8)')
    .addColumn('state', 'varchar(16)', (c) => c.notNull().defaultTo('active'))
    .addColumn('consecutive_dead', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('last_verdict', 'varchar(16)')
    .addColumn('last_reason', 'varchar(64)')
    .addColumn('last_checked_at', ts)
    .addColumn('last_live_at', ts)
    .addColumn('invalid_since', ts)
    .addColumn('balance', 'varchar(64)')
    .addColumn('currency', 'varchar(16)')
    .addColumn('created_at', ts, (c) => c.notNull())
    .addColumn('updated_at', ts, (c) => c.notNull())
    .addUniqueConstraint('tokens_provider_pool_fingerprint', ['provider_id', 'pool', 'fingerprint'])
    .execute();
  await db.schema.createIndex('tokens_provider_pool_position').on('tokens').columns(['provider_id', 'pool', 'position']).execute();
  await db.schema.createIndex('tokens_last_checked_at').on('tokens').column('last_checked_at').execute();

  await table('check_runs')
    .addColumn('id', idType(), idBuild)
    .addColumn('trigger', 'varchar(16)', (c) => c.notNull())
    .addColumn('scope', 'varchar(255)', (c) => c.notNull())
    .addColumn('status', 'varchar(16)', (c) => c.notNull())
    .addColumn('started_at', ts, (c) => c.notNull())
    .addColumn('finished_at', ts)
    .addColumn('checked', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('live', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('dead', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('exhausted', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('unknown', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('pruned', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('held', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('error', 'text')
    .execute();
  await db.schema.createIndex('check_runs_started_at').on('check_runs').column('started_at').execute();

  // History has no foreign keys on purpose: rows stay when their token or provider is removed.
  await table('token_status')
    .addColumn('id', idType(true), idBuild)
    .addColumn('run_id', 'integer')
    .addColumn('token_id', 'integer', (c) => c.notNull())
    .addColumn('provider_id', 'integer', (c) => c.notNull())
    .addColumn('fingerprint', 'varchar(12)', (c) => c.notNull())
    .addColumn('checked_at', ts, (c) => c.notNull())
    .addColumn('verdict', 'varchar(16)', (c) => c.notNull())
    .addColumn('reason', 'varchar(64)', (c) => c.notNull())
    .addColumn('http_status', 'integer')
    .addColumn('latency_ms', 'integer')
    .addColumn('balance', 'varchar(64)')
    .addColumn('currency', 'varchar(16)')
    .addColumn('detail', 'varchar(512)')
    .execute();
  await db.schema.createIndex('token_status_token_checked').on('token_status').columns(['token_id', 'checked_at']).execute();
  await db.schema.createIndex('token_status_provider_checked').on('token_status').columns(['provider_id', 'checked_at']).execute();
  await db.schema.createIndex('token_status_checked_at').on('token_status').column('checked_at').execute();
  await db.schema.createIndex('token_status_run').on('token_status').column('run_id').execute();

  await table('token_archive')
    .addColumn('id', idType(), idBuild)
    .addColumn('token_id', 'integer')
    .addColumn('provider_id', 'integer')
    .addColumn('provider_name', 'varchar(64)', (c) => c.notNull())
    .addColumn('pool', 'varchar(64)', (c) => c.notNull())
    .addColumn('secret', 'text', (c) => c.notNull())
    .addColumn('fingerprint', 'varchar(12)', (c) => c.notNull())
    .addColumn('label', 'varchar(255)')
    .addColumn('source', 'varchar(16)')
    .addColumn('source_ref', 'varchar(512)')
    .addColumn('expect', 'varchar(8)')
    .addColumn('last_verdict', 'varchar(16)')
    .addColumn('last_reason', 'varchar(64)')
    .addColumn('reason', 'varchar(64)', (c) => c.notNull())
    .addColumn('archived_at', ts, (c) => c.notNull())
    .addColumn('restored_at', ts)
    .execute();
  await db.schema.createIndex('token_archive_fingerprint').on('token_archive').column('fingerprint').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['token_archive', 'token_status', 'check_runs', 'tokens', 'providers']) {
    await db.schema.dropTable(table).execute();
  }
}
