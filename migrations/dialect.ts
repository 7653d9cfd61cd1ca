import { type Kysely, MysqlAdapter, PostgresAdapter, sql } from 'kysely';

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
