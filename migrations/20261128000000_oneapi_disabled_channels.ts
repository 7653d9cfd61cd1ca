import type { Kysely } from 'kysely';
import { createTable, flavourOf, timestampType } from './dialect.js';

/** One-API channels that tschk itself disabled: only these may it enable again. */
export async function up(db: Kysely<any>): Promise<void> {
  const flavour = flavourOf(db);
  const ts = timestampType(flavour);
  await createTable(db, flavour, 'oneapi_disabled_channels')
    // The One-API database (URL without password): channel ids of another database mean nothing.
    .addColumn('oneapi_database', 'varchar(255)', (c) => c.notNull())
    .addColumn('channel_id', 'bigint', (c) => c.notNull())
    .addColumn('provider_name', 'varchar(64)', (c) => c.notNull())
    .addColumn('reason', 'varchar(255)', (c) => c.notNull())
    .addColumn('disabled_at', ts, (c) => c.notNull())
    .addPrimaryKeyConstraint('oneapi_disabled_channels_pk', ['oneapi_database', 'channel_id'])
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('oneapi_disabled_channels').execute();
}
