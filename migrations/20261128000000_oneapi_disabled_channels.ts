import { type Kysely, MysqlAdapter, PostgresAdapter, sql } from 'kysely';

/** One-API channels that tschk itself disabled: only these may it enable again. */
export async function up(db: Kysely<any>): Promise<void> {
  const adapter = db.getExecutor().adapter;
  const flavour = adapter instanceof PostgresAdapter ? 'postgres' : adapter instanceof MysqlAdapter ? 'mysql' : 'sqlite';
  const ts = ({ postgres: 'timestamptz', mysql: sql`datetime(3)`, sqlite: 'text' } as const)[flavour];
  let table = db.schema
    .createTable('oneapi_disabled_channels')
    // The One-API database (URL without password): channel ids of another database mean nothing.
    .addColumn('oneapi_database', 'varchar(255)', (c) => c.notNull())
    .addColumn('channel_id', 'bigint', (c) => c.notNull())
    .addColumn('provider_name', 'varchar(64)', (c) => c.notNull())
    .addColumn('reason', 'varchar(255)', (c) => c.notNull())
    .addColumn('disabled_at', ts as any, (c) => c.notNull())
    .addPrimaryKeyConstraint('oneapi_disabled_channels_pk', ['oneapi_database', 'channel_id']);
  if (flavour === 'mysql') table = table.modifyEnd(sql`default character set utf8mb4 collate utf8mb4_bin`);
  await table.execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('oneapi_disabled_channels').execute();
}
