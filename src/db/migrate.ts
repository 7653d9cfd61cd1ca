import { inspect } from 'node:util';
import { Migrator, sql, type MigrationResultSet } from 'kysely';
import { migrations } from '../../migrations/index.js';
import type { Db } from './connect.js';

export async function migrateToLatest(db: Db): Promise<string[]> {
  if (await schemaIsCurrent(db)) return [];
  const migrator = new Migrator({
    db: db.kysely,
    provider: { getMigrations: async () => migrations },
  });
  const result: MigrationResultSet = await migrator.migrateToLatest();
  if (result.error) {
    const failed = result.results?.find((r) => r.status === 'Error')?.migrationName;
    const cause = result.error instanceof Error ? result.error.message : inspect(result.error);
    // No migration ran: the database itself could not be reached or refused the login.
    throw new Error(failed ? `migration ${failed} failed: ${cause}` : `cannot use the database (TSCHK_DATABASE_URL): ${cause}`);
  }
  return (result.results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

/**
 * Every start of every command migrates: when the database has run exactly the migrations this
 * build knows, one read says so, without the Migrator's lock table and its transaction. Anything
 * else (no table yet, one missing, one this build does not know, no database) is the Migrator's
 * to do or to report.
 */
async function schemaIsCurrent(db: Db): Promise<boolean> {
  try {
    const { rows } = await sql<{ name: string }>`select name from kysely_migration`.execute(db.kysely);
    const known = Object.keys(migrations);
    const ran = new Set(rows.map((r) => r.name));
    return ran.size === known.length && known.every((name) => ran.has(name));
  } catch {
    return false;
  }
}
