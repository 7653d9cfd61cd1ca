import { sql } from 'kysely';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { listArchive } from '../src/db/archive.js';
import { findProvider } from '../src/db/providers.js';
import { poolTokens } from '../src/db/tokens.js';
import { describeEachDialect, freshDatabaseUrl, testDialects } from './helpers/databases.js';
import { testDaemon } from './helpers/daemon.js';
import { startMockFreeApi, type MockFreeApi } from './helpers/mock-free-api.js';
import { createOneApi, type OneApiFixture } from './helpers/oneapi.js';

type Ctx = Awaited<ReturnType<typeof testDaemon>>;

const DEAD = 'tok-dead-1-dddddddddd';
const LIVE = ['tok-live-1-llllllllll', 'tok-live-2-llllllllll', 'tok-live-3-llllllllll', 'tok-live-4-llllllllll'];

/**
 * A One-API key rewrite commits in One-API's database, then tschk's archive commits in its own:
 * two databases, no commit that spans both. When tschk's commit fails after One-API's, the
 * key no longer holds the token while tschk still has its row; the next sync archives it as
 * `source_removed`. A deferred constraint trigger makes PostgreSQL refuse exactly that commit.
 */
describeEachDialect('One-API delete mode when tschk’s commit fails after One-API’s', (dialect) => {
  let mock: MockFreeApi;
  let oneApiDb: { url: string; drop: () => Promise<void> };
  let tschkDb: { url: string; drop: () => Promise<void> };
  let oneapi: OneApiFixture | undefined;
  let ctx: Ctx | undefined;
  const onPostgres = testDialects().includes('postgres');

  beforeEach(async () => {
    mock = await startMockFreeApi({ defaultBehaviour: 'live' });
    oneApiDb = await freshDatabaseUrl(dialect);
    if (onPostgres) tschkDb = await freshDatabaseUrl('postgres');
  });
  afterEach(async () => {
    await ctx?.daemon.stop();
    ctx = undefined;
    await oneapi?.close();
    await mock.close();
    await oneApiDb.drop();
    if (onPostgres) await tschkDb.drop();
  });

  it.skipIf(!onPostgres)(
    'leaves the key rewritten and the row in tschk, and the next sync archives the token as source_removed',
    async () => {
      oneapi = await createOneApi(oneApiDb.url, 'one-api');
      const channel = await oneapi.addChannel({ key: [DEAD, ...LIVE].join(','), baseUrl: mock.baseUrl });
      mock.setBehaviour(DEAD, 'dead');
      const c = (ctx = await testDaemon(tschkDb.url, {
        TSCHK_RETRIES: '0',
        TSCHK_PRUNE: 'delete',
        TSCHK_ONEAPI_DATABASE_URL: oneApiDb.url,
        TokenStatuCheckUrls__DeepTokenCheckUrl: mock.checkUrl,
      }));
      const run = () => c.daemon.runNow({ trigger: 'cli', force: true });
      const row = async () => (await poolTokens(c.db, (await findProvider(c.db, 'deep'))!.id, 'oneapi')).find((t) => t.secret === DEAD);

      await run(); // first dead answer: suspect
      await sql`CREATE OR REPLACE FUNCTION refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'archive refused at commit'; END $$`.execute(
        c.db.kysely,
      );
      await sql`CREATE CONSTRAINT TRIGGER refuse_archive AFTER INSERT ON token_archive DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_at_commit()`.execute(
        c.db.kysely,
      );

      const second = await run(); // confirmed dead: the prune rewrites the key, then tschk's commit fails
      expect(second.providers[0]).toMatchObject({ pruned: 0, error: expect.stringContaining('archive refused at commit') });
      expect((await oneapi.channel(channel)).key).toBe(LIVE.join(','));
      expect(await row()).toMatchObject({ source: 'oneapi' });
      expect(await listArchive(c.db, {})).toEqual([]);
      expect(c.log.entries().some((e) => e.msg === 'dead tokens removed from a One-API channel key')).toBe(false);
      expect(c.log.text).not.toContain(DEAD);

      await sql`DROP TRIGGER refuse_archive ON token_archive`.execute(c.db.kysely);
      await sql`DROP FUNCTION refuse_at_commit()`.execute(c.db.kysely);
      await run(); // its sync finds the token in no key
      expect(await row()).toBeUndefined();
      expect((await listArchive(c.db, {})).map((a) => [a.secret, a.reason, a.source_ref])).toEqual([
        [DEAD, 'source_removed', String(channel)],
      ]);
      expect(mock.calls.filter((x) => x.token === DEAD)).toHaveLength(2);
    },
  );
});
