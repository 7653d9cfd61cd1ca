// Test databases. Migrating costs ~0.1 s on SQLite, ~0.3 s on PostgreSQL and ~1 s on MariaDB, so a
// test does not migrate its own: freshDatabaseUrl() hands out a database already at the latest
// migration, emptied of the rows an earlier test left. test/global-setup.ts migrates one template
// per server for each test run (new migrations are picked up by the next run); each worker copies
// it once into a database of its own and empties that between tests. A database whose test failed
// is kept as it was and its name is printed, for inspection. emptyDatabaseUrl() still gives a
// database with no tables at all, for a test about the schema itself.
import { randomBytes } from 'node:crypto';
import { appendFileSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getCurrentSuite, getCurrentTest } from '@vitest/runner';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { describe } from 'vitest';
import { migrations } from '../../migrations/index.js';
import { openDatabase } from '../../src/db/connect.js';
import { migrateToLatest } from '../../src/db/migrate.js';

export type Dialect = 'sqlite' | 'postgres' | 'mysql';
export type ServerDialect = Exclude<Dialect, 'sqlite'>;

export interface TestDatabase {
  url: string;
  /** Gives the database back: emptied for the next test, or kept (and named) if this test failed. */
  drop: () => Promise<void>;
}

/** sqlite always, plus each server dialect whose server test/global-setup.ts made available. */
export function testDialects(): Dialect[] {
  const out: Dialect[] = ['sqlite'];
  if (process.env.TSCHK_TEST_PG_URL) out.push('postgres');
  if (process.env.TSCHK_TEST_MYSQL_URL) out.push('mysql');
  return out;
}

const SERVER_ENV: Record<ServerDialect, string> = { postgres: 'TSCHK_TEST_PG_URL', mysql: 'TSCHK_TEST_MYSQL_URL' };
/** Kysely's own bookkeeping: what makes a database "migrated"; never emptied. */
const MIGRATION_TABLES = ['kysely_migration', 'kysely_migration_lock'];

function serverUrl(dialect: ServerDialect): URL {
  const name = SERVER_ENV[dialect];
  const url = process.env[name];
  if (!url) throw new Error(`${name} is not set: is that dialect's test server running?`);
  return new URL(url);
}

function urlOf(dialect: ServerDialect, database: string): string {
  const url = serverUrl(dialect);
  url.pathname = `/${database}`;
  return url.href;
}

/** One test run's names: its template per server, and the file that lists the databases kept. */
export function testRun(): { id: string; template: string; keptList: string } {
  const id = process.env.TSCHK_TEST_RUN ?? 'solo';
  return { id, template: `tschk_${id}_template`, keptList: join(tmpdir(), `tschk-test-${id}-kept`) };
}

// ---- admin sessions (one per server and process, opened on first use) ----

let pgAdmin: pg.Pool | undefined;
let myAdmin: mysql.Pool | undefined;

async function pgQuery<R extends pg.QueryResultRow = any>(text: string, values?: unknown[]): Promise<R[]> {
  pgAdmin ??= new pg.Pool({ connectionString: serverUrl('postgres').href, max: 1, allowExitOnIdle: true }).on('error', () => {});
  return (await pgAdmin.query<R>(text, values)).rows;
}

async function myQuery<R = any>(text: string, values?: unknown[]): Promise<R[]> {
  myAdmin ??= mysql.createPool({ uri: serverUrl('mysql').href, connectionLimit: 1, multipleStatements: true });
  const [rows] = await myAdmin.query(text, values);
  return rows as R[];
}

/** Leaves the database to us alone: waits a moment for sessions still closing, then ends the rest. */
async function endSessions(dialect: ServerDialect, name: string): Promise<void> {
  // A pool that is just closing would get the kill as an uncaught error in its test, so give
  // closing sessions a moment to go first.
  for (let i = 0; i < 100; i++) {
    const n =
      dialect === 'postgres'
        ? (await pgQuery('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name]))[0].n
        : (await myQuery('SELECT count(*) AS n FROM information_schema.processlist WHERE db = ? AND id <> connection_id()', [name]))[0].n;
    if (Number(n) === 0) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  if (dialect === 'postgres') {
    await pgQuery('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name]);
  } else {
    const others = 'SELECT id FROM information_schema.processlist WHERE db = ? AND id <> connection_id()';
    const sessions = await myQuery<{ id: number }>(others, [name]);
    for (const { id } of sessions) {
      await myQuery(`KILL ${Number(id)}`).catch(() => undefined);
    }
  }
}

async function tablesOf(dialect: ServerDialect, name: string): Promise<string[]> {
  if (dialect === 'mysql') {
    const rows = await myQuery<{ t: string }>(
      "SELECT table_name AS t FROM information_schema.tables WHERE table_schema = ? AND table_type = 'BASE TABLE'",
      [name],
    );
    return rows.map((r) => r.t).sort();
  }
  const client = new pg.Client({ connectionString: urlOf('postgres', name) });
  await client.connect();
  try {
    const { rows } = await client.query<{ t: string }>("SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public'");
    return rows.map((r) => r.t).sort();
  } finally {
    await client.end();
  }
}

// ---- the template (made once per run by test/global-setup.ts) ----

/** Creates this run's migrated template on a server; returns a function that drops the run's databases. */
export async function createTemplate(dialect: ServerDialect): Promise<() => Promise<void>> {
  const { template, id } = testRun();
  if (dialect === 'postgres') await pgQuery(`CREATE DATABASE ${template}`);
  else await myQuery(`CREATE DATABASE ${template}`);
  const db = openDatabase(urlOf(dialect, template));
  try {
    await migrateToLatest(db);
  } finally {
    await db.close();
  }
  // The run's databases, the kept ones too: on a server the run started they go with the server;
  // on a server given from outside, those kept are named in the output and stay.
  return async () => {
    const kept = keptNames();
    const pattern = `tschk\\_${id}\\_%`;
    const rows =
      dialect === 'postgres'
        ? await pgQuery<{ n: string }>('SELECT datname AS n FROM pg_database WHERE datname LIKE $1', [pattern])
        : await myQuery<{ n: string }>('SELECT schema_name AS n FROM information_schema.schemata WHERE schema_name LIKE ?', [pattern]);
    const names = rows.map((r) => r.n);
    for (const n of names.filter((n) => !kept.has(n))) {
      if (dialect === 'postgres') await pgQuery(`DROP DATABASE IF EXISTS ${n} WITH (FORCE)`);
      else await myQuery(`DROP DATABASE IF EXISTS ${n}`);
    }
    await pgAdmin?.end();
    await myAdmin?.end();
    pgAdmin = myAdmin = undefined;
  };
}

/** A new database at the latest migration, copied from the run's template. */
async function cloneTemplate(dialect: ServerDialect, name: string): Promise<void> {
  const { template } = testRun();
  if (dialect === 'postgres') {
    await pgQuery(`CREATE DATABASE ${name} TEMPLATE ${template}`);
    return;
  }
  // MariaDB has no template databases: the same tables, then the migrations' bookkeeping rows.
  const statements = [`CREATE DATABASE ${name}`, `USE ${name}`, 'SET FOREIGN_KEY_CHECKS = 0'];
  for (const table of await tablesOf('mysql', template)) {
    const [row] = await myQuery<Record<string, string>>(`SHOW CREATE TABLE ${template}.\`${table}\``);
    statements.push(row!['Create Table']!);
  }
  // Views name the template's schema in what SHOW CREATE VIEW gives back: made to name none.
  const views = await myQuery<{ v: string }>(
    'SELECT table_name AS v FROM information_schema.views WHERE table_schema = ? ORDER BY table_name',
    [template],
  );
  for (const { v } of views) {
    const [row] = await myQuery<Record<string, string>>(`SHOW CREATE VIEW ${template}.\`${v}\``);
    statements.push(row!['Create View']!.replaceAll(`\`${template}\`.`, '').replace(/DEFINER=\S+ /, ''));
  }
  const seeded = [...MIGRATION_TABLES, ...(await seedOf('mysql')).rows.map((r) => r.table)];
  for (const t of seeded) statements.push(`INSERT INTO ${name}.\`${t}\` SELECT * FROM ${template}.\`${t}\``);
  statements.push('SET FOREIGN_KEY_CHECKS = 1', 'USE mysql');
  await myQuery(statements.join(';\n'));
}

// ---- a worker's own databases ----

interface Pooled {
  name: string;
  inUse: boolean;
}
const pools: Record<ServerDialect, Pooled[]> = { postgres: [], mysql: [] };

function keptNames(): Set<string> {
  try {
    return new Set(readFileSync(testRun().keptList, 'utf8').split('\n').filter(Boolean));
  } catch {
    return new Set();
  }
}

/** The template's own rows (a migration may seed some) and sequence positions, to put back after emptying. */
interface Seed {
  tables: string[];
  /** Non-empty tables, with their rows as JSON for PostgreSQL. */
  rows: Array<{ table: string; json: string }>;
  sequences: Array<{ name: string; value: string }>;
}
const seeds: Partial<Record<ServerDialect, Seed>> = {};

async function seedOf(dialect: ServerDialect): Promise<Seed> {
  const cached = seeds[dialect];
  if (cached) return cached;
  const { template } = testRun();
  const tables = await tablesOf(dialect, template);
  const data = tables.filter((t) => !MIGRATION_TABLES.includes(t));
  const seed: Seed = { tables, rows: [], sequences: [] };
  if (dialect === 'mysql') {
    for (const t of data) {
      const [row] = await myQuery<{ n: number }>(`SELECT count(*) AS n FROM ${template}.\`${t}\``);
      if (Number(row?.n) > 0) seed.rows.push({ table: t, json: '' });
    }
  } else {
    const client = new pg.Client({ connectionString: urlOf('postgres', template) });
    await client.connect();
    try {
      for (const t of data) {
        const { rows } = await client.query<{ j: string | null }>(`SELECT json_agg(x)::text AS j FROM "${t}" x`);
        if (rows[0]?.j) seed.rows.push({ table: t, json: rows[0].j });
      }
      const { rows } = await client.query<{ name: string; value: string }>(
        "SELECT sequencename AS name, last_value::text AS value FROM pg_sequences WHERE schemaname = 'public' AND last_value IS NOT NULL",
      );
      seed.sequences = rows;
    } finally {
      await client.end();
    }
  }
  return (seeds[dialect] = seed);
}

/**
 * Empties a database for the next test: back to the template's rows and counters, tables a test
 * added dropped. False when a test changed the schema itself (not worth mending: made anew).
 */
async function reset(dialect: ServerDialect, name: string): Promise<boolean> {
  const seed = await seedOf(dialect);
  const { template } = testRun();
  await endSessions(dialect, name);
  const data = seed.tables.filter((t) => !MIGRATION_TABLES.includes(t));
  if (dialect === 'postgres') {
    // One session for the whole reset: opening one costs about as much as the reset itself.
    const client = new pg.Client({ connectionString: urlOf('postgres', name) });
    await client.connect();
    try {
      const present = (await client.query<{ t: string }>("SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public'")).rows.map(
        (r) => r.t,
      );
      if (!seed.tables.every((t) => present.includes(t))) return false;
      const extra = present.filter((t) => !seed.tables.includes(t));
      const { rows } = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM kysely_migration');
      if (rows[0]!.n !== Object.keys(migrations).length) return false;
      const q = (ts: string[]) => ts.map((t) => `"${t}"`).join(', ');
      const statements = [`TRUNCATE ${q(data)} RESTART IDENTITY CASCADE`];
      if (extra.length) statements.unshift(`DROP TABLE ${q(extra)} CASCADE`);
      await client.query(`BEGIN; ${statements.join('; ')}`);
      for (const { table, json } of seed.rows) {
        await client.query(`INSERT INTO "${table}" SELECT * FROM json_populate_recordset(null::"${table}", $1::json)`, [json]);
      }
      for (const { name: seq, value } of seed.sequences) await client.query('SELECT setval($1, $2::bigint)', [`"${seq}"`, value]);
      await client.query('COMMIT');
    } finally {
      await client.end();
    }
    return true;
  }
  const present = await tablesOf(dialect, name);
  if (!seed.tables.every((t) => present.includes(t))) return false;
  const extra = present.filter((t) => !seed.tables.includes(t));
  const [count] = await myQuery<{ n: number }>(`SELECT count(*) AS n FROM ${name}.kysely_migration`);
  if (Number(count?.n) !== Object.keys(migrations).length) return false;
  // DELETE, not TRUNCATE: InnoDB's TRUNCATE recreates the table, ten times slower here.
  const counters = await myQuery<{ t: string }>(
    'SELECT table_name AS t FROM information_schema.tables WHERE table_schema = ? AND auto_increment > 1',
    [name],
  );
  const statements = ['SET FOREIGN_KEY_CHECKS = 0'];
  for (const t of extra) statements.push(`DROP TABLE ${name}.\`${t}\``);
  for (const t of data) statements.push(`DELETE FROM ${name}.\`${t}\``);
  for (const { table } of seed.rows) statements.push(`INSERT INTO ${name}.\`${table}\` SELECT * FROM ${template}.\`${table}\``);
  for (const { t } of counters) if (data.includes(t)) statements.push(`ALTER TABLE ${name}.\`${t}\` AUTO_INCREMENT = 1`);
  statements.push('SET FOREIGN_KEY_CHECKS = 1');
  await myQuery(statements.join(';\n'));
  return true;
}

async function dropServerDatabase(dialect: ServerDialect, name: string): Promise<void> {
  await endSessions(dialect, name);
  if (dialect === 'postgres') await pgQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  else await myQuery(`DROP DATABASE IF EXISTS ${name}`);
}

/** What a database was taken for: the test, or the suite when taken in a beforeAll. */
function owner(): { failed: () => boolean; title: string } {
  const test = getCurrentTest();
  if (test) return { failed: () => test.result?.state === 'fail', title: test.fullName ?? test.name };
  const suite = getCurrentSuite();
  const anyFailed = (tasks: any[]): boolean => tasks.some((t) => t.result?.state === 'fail' || (t.tasks && anyFailed(t.tasks)));
  return { failed: () => anyFailed(suite?.tasks ?? []), title: suite?.name || 'a suite' };
}

function keep(name: string, where: string, title: string, dialect: Dialect): void {
  appendFileSync(testRun().keptList, `${name}\n`);
  // A server the run started goes at its end; one named in TSCHK_TEST_PG_URL / TSCHK_TEST_MYSQL_URL stays.
  const lasts = dialect === 'sqlite' ? '' : `; it lasts past the run on a server given in ${SERVER_ENV[dialect]}`;
  console.error(`tschk tests: kept the database of a failed test for inspection: ${where} (${title})${lasts}`);
}

let sqliteTemplate: string | undefined;

async function migratedSqlite(): Promise<string> {
  if (!sqliteTemplate) {
    const dir = mkdtempSync(join(tmpdir(), 'tschk-sqlite-template-'));
    const file = join(dir, 'template.db');
    const db = openDatabase(`sqlite:${file}`);
    try {
      await migrateToLatest(db);
    } finally {
      await db.close();
    }
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    sqliteTemplate = file;
  }
  return sqliteTemplate;
}

/**
 * A database at the latest migration with no rows, for this test alone until drop(). On a server
 * it is one the worker reuses: rows left by an earlier test are removed when it is handed out.
 */
export async function freshDatabaseUrl(dialect: Dialect): Promise<TestDatabase> {
  const { failed, title } = owner();
  if (dialect === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'tschk-sqlite-'));
    const file = join(dir, `tschk-${randomBytes(6).toString('hex')}.db`);
    copyFileSync(await migratedSqlite(), file);
    return {
      url: `sqlite:${file}`,
      drop: async () => {
        if (failed()) keep(file, file, title, dialect);
        else rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  const pool = pools[dialect];
  let entry: Pooled | undefined;
  for (const free of pool.filter((p) => !p.inUse)) {
    free.inUse = true;
    if (await reset(dialect, free.name)) {
      entry = free;
      break;
    }
    // A test changed the schema itself: this one is not worth mending.
    pool.splice(pool.indexOf(free), 1);
    await dropServerDatabase(dialect, free.name);
  }
  if (!entry) {
    entry = { name: `tschk_${testRun().id}_w${process.env.VITEST_POOL_ID ?? '0'}_${randomBytes(4).toString('hex')}`, inUse: true };
    await cloneTemplate(dialect, entry.name);
    pool.push(entry);
  }
  const taken = entry;
  let given = false;
  return {
    url: urlOf(dialect, taken.name),
    drop: async () => {
      if (given) return;
      given = true;
      if (failed()) {
        pool.splice(pool.indexOf(taken), 1);
        keep(taken.name, urlOf(dialect, taken.name), title, dialect);
      } else {
        taken.inUse = false;
      }
    },
  };
}

/** A brand-new database with no tables at all; drop() removes it. */
export async function emptyDatabaseUrl(dialect: Dialect): Promise<TestDatabase> {
  const name = `tschk_${testRun().id}_e_${randomBytes(6).toString('hex')}`;
  if (dialect === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'tschk-sqlite-'));
    mkdirSync(dir, { recursive: true });
    return { url: `sqlite:${join(dir, `tschk-${name.slice(-12)}.db`)}`, drop: async () => rmSync(dir, { recursive: true, force: true }) };
  }
  if (dialect === 'postgres') await pgQuery(`CREATE DATABASE ${name}`);
  else await myQuery(`CREATE DATABASE ${name}`);
  return { url: urlOf(dialect, name), drop: () => dropServerDatabase(dialect, name) };
}

/** Runs the suite once per available dialect, with the dialect in its title. */
export function describeEachDialect(name: string, fn: (dialect: Dialect) => void): void {
  // A loop rather than describe.each, whose printf-style titles would mangle a '%' in name.
  for (const dialect of testDialects()) describe(`${name} [${dialect}]`, () => fn(dialect));
}
