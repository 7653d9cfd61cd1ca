import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { describe } from 'vitest';

export type Dialect = 'sqlite' | 'postgres' | 'mysql';

/** sqlite always, plus each server dialect whose server test/global-setup.ts made available. */
export function testDialects(): Dialect[] {
  const out: Dialect[] = ['sqlite'];
  if (process.env.TSCHK_TEST_PG_URL) out.push('postgres');
  if (process.env.TSCHK_TEST_MYSQL_URL) out.push('mysql');
  return out;
}

function serverUrl(name: string): URL {
  const url = process.env[name];
  if (!url) throw new Error(`${name} is not set: is that dialect's test server running?`);
  return new URL(url);
}

/** A brand-new empty database; drop() removes it. */
export async function freshDatabaseUrl(dialect: Dialect): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `tschk_t_${randomBytes(6).toString('hex')}`;
  switch (dialect) {
    case 'sqlite': {
      const dir = mkdtempSync(join(tmpdir(), 'tschk-sqlite-'));
      return {
        url: `sqlite:${join(dir, `tschk-${name.slice(8)}.db`)}`,
        drop: async () => rmSync(dir, { recursive: true, force: true }),
      };
    }
    case 'postgres': {
      const admin = serverUrl('TSCHK_TEST_PG_URL');
      const exec = async (fn: (client: pg.Client) => Promise<unknown>) => {
        const client = new pg.Client({ connectionString: admin.href });
        await client.connect();
        try {
          await fn(client);
        } finally {
          await client.end();
        }
      };
      await exec((c) => c.query(`CREATE DATABASE ${name}`));
      const url = new URL(admin);
      url.pathname = `/${name}`;
      // FORCE kills sessions still open; a pool that is just closing would get that kill as an
      // uncaught error in the test, so give closing sessions a moment to go first.
      const drop = () =>
        exec(async (c) => {
          for (let i = 0; i < 100; i++) {
            const { rows } = await c.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1', [name]);
            if (rows[0].n === 0) break;
            await new Promise((r) => setTimeout(r, 20));
          }
          await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        });
      return { url: url.href, drop };
    }
    case 'mysql': {
      const admin = serverUrl('TSCHK_TEST_MYSQL_URL');
      const exec = async (sql: string) => {
        const conn = await mysql.createConnection(admin.href);
        try {
          await conn.query(sql);
        } finally {
          await conn.end();
        }
      };
      await exec(`CREATE DATABASE ${name}`);
      const url = new URL(admin);
      url.pathname = `/${name}`;
      return { url: url.href, drop: () => exec(`DROP DATABASE IF EXISTS ${name}`) };
    }
  }
}

/** Runs the suite once per available dialect, with the dialect in its title. */
export function describeEachDialect(name: string, fn: (dialect: Dialect) => void): void {
  // A loop rather than describe.each, whose printf-style titles would mangle a '%' in name.
  for (const dialect of testDialects()) describe(`${name} [${dialect}]`, () => fn(dialect));
}
