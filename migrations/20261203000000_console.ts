import type { Kysely } from 'kysely';
import { createTable, flavourOf, timestampType } from './dialect.js';

/**
 * The web console: `console_sessions` holds who signed in, until when (the row's id is a keyed
 * hash of the cookie, so a copy of the database signs nobody in); `run_leases.selection` tells
 * other processes that the run in flight checks only the tokens matching a filter (a bulk
 * re-check), so that they never take it for a run of the whole pool.
 */
export async function up(db: Kysely<any>): Promise<void> {
  const flavour = flavourOf(db);
  const ts = timestampType(flavour);
  const table = (name: string) => createTable(db, flavour, name);
  await table('console_sessions')
    .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('client', 'varchar(64)', (c) => c.notNull())
    .addColumn('created_at', ts, (c) => c.notNull())
    .addColumn('expires_at', ts, (c) => c.notNull())
    .execute();
  await db.schema.createIndex('console_sessions_expires_at').on('console_sessions').column('expires_at').execute();
  await db.schema.alterTable('run_leases').addColumn('selection', 'varchar(512)').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('run_leases').dropColumn('selection').execute();
  await db.schema.dropTable('console_sessions').execute();
}
