import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase, type Db } from '../src/db/connect.js';
import { freshDatabaseUrl, type TestDatabase } from './helpers/databases.js';

describe('one SQLite file opened twice in one process', () => {
  let database: TestDatabase;
  let a: Db;
  let b: Db;
  beforeEach(async () => {
    database = await freshDatabaseUrl('sqlite');
    a = openDatabase(database.url);
    b = openDatabase(database.url);
  });
  afterEach(async () => {
    await Promise.all([a.close(), b.close()]);
    await database.drop();
  });

  it("a write waits for the other handle's transaction to end instead of failing with 'database is locked'", async () => {
    const order: string[] = [];
    let holding!: () => void;
    const held = new Promise<void>((r) => (holding = r));
    const transaction = a.kysely.transaction().execute(async (trx) => {
      await trx.insertInto('history_state').values({ name: 'from_a', value: 1 }).execute();
      holding();
      // The transaction gives the event loop a turn, as a run's batch of checks does between its statements.
      await new Promise((r) => setTimeout(r, 20));
      order.push('a committed');
    });
    await held;
    await b.kysely.insertInto('history_state').values({ name: 'from_b', value: 2 }).execute();
    order.push('b wrote');
    await transaction;

    expect(order).toEqual(['a committed', 'b wrote']);
    const rows = await b.kysely.selectFrom('history_state').select('name').where('name', 'in', ['from_a', 'from_b']).execute();
    expect(rows.map((r) => r.name).sort()).toEqual(['from_a', 'from_b']);
  });
});
