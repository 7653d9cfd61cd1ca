import { type Kysely, MysqlAdapter } from 'kysely';

/**
 * The due-token query pages through one provider in id order (`provider_id = ? AND id > ?
 * ORDER BY id`): without this index every page sorted all the provider's tokens again.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex('tokens_provider_id').on('tokens').columns(['provider_id', 'id']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  const drop = db.schema.dropIndex('tokens_provider_id');
  // MySQL names indexes per table; PostgreSQL and SQLite refuse `ON table`.
  await (db.getExecutor().adapter instanceof MysqlAdapter ? drop.on('tokens') : drop).execute();
}
