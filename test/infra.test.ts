// Tests of the test infrastructure itself: throwaway databases and the mock free-api.
import Database from 'better-sqlite3';
import { Kysely, MysqlDialect, PostgresDialect, SqliteDialect, sql } from 'kysely';
import { createPool } from 'mysql2';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { migrations } from '../migrations/index.js';
import { openDatabase } from '../src/db/connect.js';
import { migrateToLatest } from '../src/db/migrate.js';
import { upsertProvider } from '../src/db/providers.js';
import { importTokens, listTokens } from '../src/db/tokens.js';
import { describeEachDialect, emptyDatabaseUrl, freshDatabaseUrl, testDialects, type Dialect } from './helpers/databases.js';
import { HTML_200, NGINX_502, startMockFreeApi, type Behaviour, type MockFreeApi } from './helpers/mock-free-api.js';

function connect(dialect: Dialect, url: string): Kysely<any> {
  switch (dialect) {
    case 'sqlite':
      return new Kysely({ dialect: new SqliteDialect({ database: new Database(url.slice('sqlite:'.length)) }) });
    case 'postgres':
      return new Kysely({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 2 }) }) });
    case 'mysql':
      return new Kysely({ dialect: new MysqlDialect({ pool: createPool({ uri: url, connectionLimit: 2 }) }) });
  }
}

describe('test servers', () => {
  it('reach the workers through env and inject alike', () => {
    const urls = inject('tschkDatabaseUrls');
    expect(urls.postgres).toBe(process.env.TSCHK_TEST_PG_URL);
    expect(urls.mysql).toBe(process.env.TSCHK_TEST_MYSQL_URL);
    expect(testDialects()[0]).toBe('sqlite');
  });

  it.runIf(process.env.TSCHK_TEST_REQUIRE_DIALECTS === 'all')('are all running when required', () => {
    expect(testDialects()).toEqual(['sqlite', 'postgres', 'mysql']);
  });
});

describeEachDialect('emptyDatabaseUrl', (dialect) => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  const open = async () => {
    const { url, drop } = await emptyDatabaseUrl(dialect);
    const db = connect(dialect, url);
    cleanups.push(drop, () => db.destroy());
    return { url, db };
  };

  it('gives a database that answers select 1', async () => {
    const { url, db } = await open();
    expect(url.startsWith(dialect === 'mysql' ? 'mysql://' : `${dialect}:`)).toBe(true);
    const { rows } = await sql<{ one: number }>`select 1 as one`.execute(db);
    expect(Number(rows[0]?.one)).toBe(1);
  });

  it('gives a new, empty database each call', async () => {
    const a = await open();
    const b = await open();
    expect(a.url).not.toBe(b.url);
    await a.db.schema.createTable('probe').addColumn('id', 'integer').execute();
    expect((await a.db.introspection.getTables()).map((t) => t.name)).toEqual(['probe']);
    expect(await b.db.introspection.getTables()).toEqual([]);
  });

  it('drop() removes the database', async () => {
    const { url, drop } = await emptyDatabaseUrl(dialect);
    const db = connect(dialect, url);
    await sql`select 1`.execute(db);
    await db.destroy();
    await drop();
    if (dialect === 'sqlite') {
      expect(() => new Database(url.slice('sqlite:'.length), { fileMustExist: true })).toThrow();
    } else {
      const again = connect(dialect, url);
      cleanups.push(() => again.destroy());
      await expect(sql`select 1`.execute(again)).rejects.toThrow(/does not exist|Unknown database/);
    }
  });
});

describeEachDialect('freshDatabaseUrl', (dialect) => {
  const latest = Object.keys(migrations).sort();
  const tablesOf = async (db: Kysely<any>) => (await db.introspection.getTables()).map((t) => t.name).sort();
  /** What a migrated database holds: its migrations, its tables, and how many rows each has. */
  const migrated = async (url: string) => {
    const db = connect(dialect, url);
    try {
      const { rows } = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(db);
      const tables = await tablesOf(db);
      const rowCounts: Record<string, number> = {};
      for (const t of tables) {
        if (t.startsWith('kysely_')) continue;
        const { rows: n } = await sql<{ n: number }>`select count(*) as n from ${sql.table(t)}`.execute(db);
        rowCounts[t] = Number(n[0]?.n);
      }
      return { migrations: rows.map((r) => r.name), tables, rowCounts };
    } finally {
      await db.destroy();
    }
  };
  let reference: Awaited<ReturnType<typeof migrated>>;
  beforeAll(async () => {
    const empty = await emptyDatabaseUrl(dialect);
    const db = openDatabase(empty.url);
    await migrateToLatest(db);
    await db.close();
    reference = await migrated(empty.url);
    await empty.drop();
  });

  it('gives a database as migrating a new one leaves it: the latest migration, every table, only the rows migrations add', async () => {
    const fresh = await freshDatabaseUrl(dialect);
    try {
      expect(reference.migrations).toEqual(latest);
      expect(await migrated(fresh.url)).toEqual(reference);
    } finally {
      await fresh.drop();
    }
  });

  it('gives two databases in use at once apart, and takes the rows, counters and tables a test left away', async () => {
    const first = await freshDatabaseUrl(dialect);
    const other = await freshDatabaseUrl(dialect);
    expect(other.url).not.toBe(first.url);
    let db = openDatabase(first.url);
    const p = await upsertProvider(db, { name: 'left-behind', kind: 'free-api', checkUrl: 'http://127.0.0.1:9/token/check' });
    await importTokens(db, { providerId: p.id, pool: 'default', entries: ['left-behind-token-1234'], source: 'cli' });
    await db.kysely.schema.createTable('probe').addColumn('id', 'integer').execute();
    await db.close();
    await first.drop();
    await other.drop();

    const again = await freshDatabaseUrl(dialect);
    try {
      if (dialect !== 'sqlite') expect([first.url, other.url]).toContain(again.url);
      expect(await migrated(again.url)).toEqual(reference);
      db = openDatabase(again.url);
      try {
        expect(await listTokens(db, {})).toEqual([]);
        const q = await upsertProvider(db, { name: 'next', kind: 'free-api', checkUrl: 'http://127.0.0.1:9/token/check' });
        expect(q.id).toBe(1);
      } finally {
        await db.close();
      }
    } finally {
      await again.drop();
    }
  });
});

describe('mock free-api', () => {
  let api: MockFreeApi;
  beforeAll(async () => {
    api = await startMockFreeApi({ behaviours: { 'tok-live': 'live' } });
  });
  afterAll(() => api.close());

  const check = (token: unknown, init: RequestInit = {}) =>
    fetch(api.checkUrl, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ token }),
      ...init,
    });
  const answerOf = async (b: Behaviour) => {
    const token = `t-${Math.random()}`;
    api.setBehaviour(token, b);
    const res = await check(token);
    return { status: res.status, type: res.headers.get('content-type'), body: await res.text(), res };
  };
  const env = (code: number, message: string) => JSON.stringify({ code, message, data: null });

  it.each<[Behaviour, number, string]>([
    ['live', 200, '{"live":true}'],
    ['dead', 200, '{"live":false}'],
    ['auth_failed', 200, env(-2001, '请求失败: Authorization Failed (invalid token)')],
    ['upstream_error', 200, env(-2001, '请求失败: 服务暂时不可用')],
    ['unreachable', 200, env(-1000, 'getaddrinfo ENOTFOUND kimi.moonshot.cn')],
    ['bad_request', 200, env(-2000, 'Params body.token invalid')],
    [{ kind: 'envelope', code: -2001, message: '请求失败: token失效' }, 200, env(-2001, '请求失败: token失效')],
    ['html_502', 502, NGINX_502],
    ['http_503', 503, 'Service Unavailable'],
    ['not_found', 404, 'Not Found'],
    ['broken_json', 200, '{"live": tr'],
    ['other_json', 200, '{"hello":"world"}'],
    ['html_200', 200, HTML_200],
    [{ kind: 'delay', ms: 50, then: 'live' }, 200, '{"live":true}'],
  ])('answers %j with HTTP %i', async (b, status, body) => {
    const got = await answerOf(b);
    expect([got.status, got.body]).toEqual([status, body]);
    if (status === 200 && body.startsWith('{')) expect(got.type).toMatch(/^application\/json/);
    if (b === 'html_502' || b === 'html_200') expect(got.type).toMatch(/^text\/html/);
  });

  it('rate limits with Retry-After', async () => {
    const plain = await answerOf('rate_limited');
    expect([plain.status, plain.res.headers.get('retry-after')]).toEqual([429, '1']);
    const custom = await answerOf({ kind: 'rate_limited', retryAfterS: 7 });
    expect([custom.status, custom.res.headers.get('retry-after')]).toEqual([429, '7']);
  });

  it('resets the connection', async () => {
    await expect(answerOf('reset')).rejects.toMatchObject({ cause: { code: 'ECONNRESET' } });
  });

  it('never answers a timeout, and close() still returns', async () => {
    const hung = await startMockFreeApi({ defaultBehaviour: 'timeout' });
    const started = Date.now();
    await expect(fetch(hung.checkUrl, { method: 'POST', body: '{"token":"x"}', signal: AbortSignal.timeout(100) })).rejects.toMatchObject({
      name: 'TimeoutError',
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(95);
    const pending = fetch(hung.checkUrl, { method: 'POST', body: '{"token":"y"}' }).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 50));
    await hung.close(); // would hang on the open request without closeAllConnections()
    expect(await pending).toBeInstanceOf(TypeError);
    expect(hung.calls.map((c) => c.token)).toEqual(['x', 'y']);
  });

  it('uses the default behaviour for unknown tokens, and setDefault changes it', async () => {
    expect(await (await check('never-seen')).text()).toBe('{"live":false}');
    api.setDefault('live');
    expect(await (await check('never-seen')).text()).toBe('{"live":true}');
    api.setDefault('dead');
    expect(await (await check('tok-live')).text()).toBe('{"live":true}');
  });

  it('answers -2000 to a body without a string token', async () => {
    for (const body of ['{}', '{"token":5}', 'not json', '']) {
      const res = await fetch(api.checkUrl, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
      expect([res.status, await res.text()]).toEqual([200, env(-2000, 'Params body.token invalid')]);
    }
  });

  it('answers -1000 on a wrong method or path', async () => {
    for (const [method, path] of [
      ['GET', '/token/check'],
      ['POST', '/v1/token/check'],
    ] as const) {
      const res = await fetch(api.baseUrl + path, { method, ...(method === 'POST' ? { body: '{"token":"a"}' } : {}) });
      expect(res.status).toBe(200);
      expect(JSON.parse(await res.text())).toMatchObject({ code: -1000, data: null });
    }
  });

  it('records every call in order', async () => {
    const before = api.calls.length;
    const t0 = Date.now();
    await check('rec-1');
    await check('rec-2');
    expect(api.calls.slice(before).map((c) => c.token)).toEqual(['rec-1', 'rec-2']);
    expect(api.calls.at(-1)!.at).toBeGreaterThanOrEqual(t0);
  });
});
