import { sql } from 'kysely';
import { expect, it } from 'vitest';
import { migrations } from '../migrations/index.js';
import { openDatabase, type Db } from '../src/db/connect.js';
import { migrateToLatest } from '../src/db/migrate.js';
import { describeEachDialect, emptyDatabaseUrl } from './helpers/databases.js';

const names = Object.keys(migrations).sort();
const last = names.at(-1)!;
const FUTURE = '20991231000000_from_a_newer_build';

describeEachDialect('migrateToLatest', (dialect) => {
  async function withMigrated(test: (db: Db) => Promise<void>) {
    const empty = await emptyDatabaseUrl(dialect);
    const db = openDatabase(empty.url);
    try {
      expect(await migrateToLatest(db)).toEqual(names);
      await test(db);
    } finally {
      await db.close();
      await empty.drop();
    }
  }
  const ran = async (db: Db) =>
    (await sql<{ name: string }>`select name from kysely_migration order by name`.execute(db.kysely)).rows.map((r) => r.name);

  it('applies nothing to a database that is current, and says so in one statement (every command starts with it)', async () => {
    await withMigrated(async (db) => {
      expect(await migrateToLatest(db)).toEqual([]);
      expect(await ran(db)).toEqual(names);
    });
    const empty = await emptyDatabaseUrl(dialect);
    const setup = openDatabase(empty.url);
    await migrateToLatest(setup).finally(() => setup.close());
    let statements = 0;
    const db = openDatabase(empty.url, { onStatement: () => statements++ });
    try {
      expect(await migrateToLatest(db)).toEqual([]);
      // Kysely's Migrator takes ~10 (its tables, the lock, a transaction) even when there is nothing to do.
      expect(statements).toBe(1);
    } finally {
      await db.close();
      await empty.drop();
    }
  });

  it('refuses a database that ran a migration this build does not know', async () => {
    await withMigrated(async (db) => {
      await sql`insert into kysely_migration (name, timestamp) values (${FUTURE}, ${new Date().toISOString()})`.execute(db.kysely);
      await expect(migrateToLatest(db)).rejects.toThrow(FUTURE);
    });
  });

  it('refuses a database whose migrations are as many as this build knows, but not the same ones', async () => {
    await withMigrated(async (db) => {
      await sql`delete from kysely_migration where name = ${last}`.execute(db.kysely);
      await sql`insert into kysely_migration (name, timestamp) values (${FUTURE}, ${new Date().toISOString()})`.execute(db.kysely);
      await expect(migrateToLatest(db)).rejects.toThrow(FUTURE);
    });
  });
});
