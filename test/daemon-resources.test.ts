import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openTarget } from '../src/db/connect.js';
import { upsertProvider } from '../src/db/providers.js';
import { importTokens } from '../src/db/tokens.js';
import { parseDatabaseUrl } from '../src/db/url.js';
import { describeEachDialect, freshDatabaseUrl } from './helpers/databases.js';
import { testDaemon } from './helpers/daemon.js';
import { startMockFreeApi, type MockFreeApi } from './helpers/mock-free-api.js';
import { startMockOfficial, type MockOfficial } from './helpers/mock-official.js';
import { createOneApi, type OneApiFixture } from './helpers/oneapi.js';
import { waitFor } from './helpers/wait.js';

type Ctx = Awaited<ReturnType<typeof testDaemon>>;

describe('a daemon keeps its own DeepSeek account sessions', () => {
  let mock: MockOfficial;
  const dbs: Array<{ url: string; drop: () => Promise<void> }> = [];
  const daemons: Ctx[] = [];
  beforeEach(async () => {
    mock = await startMockOfficial();
  });
  afterEach(async () => {
    for (const c of daemons.splice(0)) await c.daemon.stop();
    for (const d of dbs.splice(0)) await d.drop();
    await mock.close();
  });

  async function daemonWithAccount(account: string): Promise<Ctx> {
    const db = await freshDatabaseUrl('sqlite');
    dbs.push(db);
    const c = await testDaemon(db.url, { TSCHK_RETRIES: '0' });
    daemons.push(c);
    const p = await upsertProvider(c.db, { name: 'ds-accounts', kind: 'deepseek-account', checkUrl: mock.baseUrl });
    await importTokens(c.db, { providerId: p.id, pool: 'default', entries: [account], source: 'cli', wholeEntries: true });
    return c;
  }

  it('logs in once per account for its life, and a second daemon in the same process logs in for itself', async () => {
    mock.addAccount('13800000777', { password: 'pw-own', estimation: '4722170' });
    const first = await daemonWithAccount('13800000777-pw-own');
    expect(await first.daemon.runNow({ trigger: 'cli', force: true })).toMatchObject({ live: 1 });
    expect(await first.daemon.runNow({ trigger: 'cli', force: true })).toMatchObject({ live: 1 });
    expect(mock.logins()).toHaveLength(1);

    const second = await daemonWithAccount('13800000777-pw-own');
    expect(await second.daemon.runNow({ trigger: 'cli', force: true })).toMatchObject({ live: 1 });
    expect(mock.logins()).toHaveLength(2);
  });
});

/** The connections other than the asker's that are open on the database of `url`. */
async function sessionsOn(
  url: string,
): Promise<{ ids: () => Promise<number[]>; kill: (id: number) => Promise<void>; close: () => Promise<void> }> {
  const target = parseDatabaseUrl(url)!;
  const { kysely, close } = openTarget<unknown>(target, { poolSize: 1, foreign: true });
  const db = kysely;
  const query =
    target.dialect === 'postgres'
      ? sql<{ id: number }>`select pid as id from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()`
      : sql<{ id: number }>`select id from information_schema.processlist where db = database() and id <> connection_id()`;
  return {
    ids: async () => (await query.execute(db)).rows.map((r) => Number(r.id)).sort((a, b) => a - b),
    kill: async (id) => {
      await (target.dialect === 'postgres' ? sql`select pg_terminate_backend(${id})` : sql.raw(`KILL ${Number(id)}`)).execute(db);
    },
    close,
  };
}

describeEachDialect('a daemon holds one pool to One-API’s database', (dialect) => {
  let mock: MockFreeApi;
  let oneApiDb: { url: string; drop: () => Promise<void> };
  let tschkDb: { url: string; drop: () => Promise<void> };
  let oneapi: OneApiFixture;
  let ctx: Ctx | undefined;

  beforeEach(async () => {
    mock = await startMockFreeApi({ defaultBehaviour: 'live' });
    oneApiDb = await freshDatabaseUrl(dialect);
    tschkDb = await freshDatabaseUrl('sqlite');
  });
  afterEach(async () => {
    await ctx?.daemon.stop();
    ctx = undefined;
    await oneapi?.close();
    await mock.close();
    await oneApiDb.drop();
    await tschkDb.drop();
  });

  // SQLite shows no list of the connections open on a file.
  it.skipIf(dialect === 'sqlite')('the same connections serve every run, a lost one is logged, and stop() closes them', async () => {
    oneapi = await createOneApi(oneApiDb.url, 'one-api');
    await oneapi.addChannel({ key: 'tok-live-1-llllllllll,tok-live-2-llllllllll', baseUrl: mock.baseUrl });
    const sessions = await sessionsOn(oneApiDb.url);
    try {
      const fixture = await sessions.ids(); // the fixture's own connection
      ctx = await testDaemon(tschkDb.url, {
        TSCHK_RETRIES: '0',
        TSCHK_ONEAPI_DATABASE_URL: oneApiDb.url,
        TokenStatuCheckUrls__DeepTokenCheckUrl: mock.checkUrl,
      });
      const ours = async () => (await sessions.ids()).filter((id) => !fixture.includes(id));

      expect(await ctx.daemon.runNow({ trigger: 'cli', force: true })).toMatchObject({ checked: 2, live: 2 });
      const afterFirst = await ours();
      expect(afterFirst.length).toBeGreaterThan(0);
      expect(afterFirst.length).toBeLessThanOrEqual(2);
      await ctx.daemon.runNow({ trigger: 'cli', force: true });
      expect(await ours()).toEqual(expect.arrayContaining(afterFirst));

      // The server drops an idle connection: said in the log, and the next run opens another.
      for (const id of await ours()) await sessions.kill(id);
      const log = ctx.log;
      await waitFor(
        () => log.entries().some((e) => e.msg === 'One-API database connection lost; the next query opens a new one'),
        5_000,
        'a lost One-API connection is logged',
      );
      expect(await ctx.daemon.runNow({ trigger: 'cli', force: true })).toMatchObject({ checked: 2, live: 2 });

      await ctx.daemon.stop();
      ctx = undefined;
      await waitFor(async () => (await ours()).length === 0, 5_000, 'the daemon closes its One-API connections when it stops');
    } finally {
      await sessions.close();
    }
  });
});
