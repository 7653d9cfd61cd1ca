import type { Kysely } from 'kysely';
import { createTable, flavourOf, timestampType } from './dialect.js';

/**
 * Runs are kept apart in the database, not in one process's memory: `run_leases` has one row per
 * job ('run', 'trim') that a process holds while it works; `check_run_providers` keeps each run's
 * per-provider outcome so that any replica can tell it; `daemons` lists the serve processes alive.
 */
export async function up(db: Kysely<any>): Promise<void> {
  const flavour = flavourOf(db);
  const ts = timestampType(flavour);
  const table = (name: string) => createTable(db, flavour, name);

  await table('run_leases')
    .addColumn('name', 'varchar(32)', (c) => c.primaryKey())
    .addColumn('holder', 'varchar(128)')
    .addColumn('host', 'varchar(255)')
    .addColumn('pid', 'integer')
    .addColumn('run_id', 'integer')
    .addColumn('trigger', 'varchar(16)')
    .addColumn('provider', 'varchar(64)')
    .addColumn('pool', 'varchar(64)')
    .addColumn('forced', 'smallint', (c) => c.notNull().defaultTo(0))
    .addColumn('force_prune', 'smallint', (c) => c.notNull().defaultTo(0))
    .addColumn('acquired_at', ts)
    .addColumn('expires_at', ts)
    .addColumn('last_tick', ts)
    .execute();
  await db
    .insertInto('run_leases')
    .values([{ name: 'run' }, { name: 'trim' }])
    .execute();

  await table('check_run_providers')
    .addColumn('run_id', 'integer', (c) => c.notNull())
    .addColumn('provider_id', 'integer', (c) => c.notNull())
    .addColumn('provider_name', 'varchar(64)', (c) => c.notNull())
    .addColumn('checked', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('live', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('dead', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('exhausted', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('unknown', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('pruned', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('held', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('unreachable', 'smallint', (c) => c.notNull().defaultTo(0))
    .addColumn('unreliable', 'smallint', (c) => c.notNull().defaultTo(0))
    .addColumn('held_reason', 'varchar(512)')
    .addColumn('error', 'text')
    .addPrimaryKeyConstraint('check_run_providers_pk', ['run_id', 'provider_id'])
    .execute();

  await table('daemons')
    .addColumn('holder', 'varchar(128)', (c) => c.primaryKey())
    .addColumn('host', 'varchar(255)', (c) => c.notNull())
    .addColumn('pid', 'integer', (c) => c.notNull())
    .addColumn('started_at', ts, (c) => c.notNull())
    .addColumn('seen_at', ts, (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const name of ['daemons', 'check_run_providers', 'run_leases']) await db.schema.dropTable(name).execute();
}
