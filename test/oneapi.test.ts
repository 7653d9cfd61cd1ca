import { sql } from 'kysely';
import { afterEach, beforeEach, expect, it } from 'vitest';
import type { OneApiFlavor } from '../src/config.js';
import { listArchive } from '../src/db/archive.js';
import { openTarget } from '../src/db/connect.js';
import { findProvider } from '../src/db/providers.js';
import { poolTokens } from '../src/db/tokens.js';
import { fingerprint } from '../src/secret.js';
import { parseDatabaseUrl } from '../src/db/url.js';
import { restoreArchived } from '../src/sources/restore.js';
import { describeEachDialect, freshDatabaseUrl, type Dialect } from './helpers/databases.js';
import { testDaemon } from './helpers/daemon.js';
import { startMockFreeApi, type MockFreeApi } from './helpers/mock-free-api.js';
import { createOneApi, type OneApiFixture } from './helpers/oneapi.js';
import { waitFor } from './helpers/wait.js';

type Ctx = Awaited<ReturnType<typeof testDaemon>>;

/** Enough live tokens that the dead ones stay under the breaker's ratio. */
const LIVE = 'tok-live-1-llllllllll,tok-live-2-llllllllll,tok-live-3-llllllllll,tok-live-4-llllllllll';

describeEachDialect('One-API channels', (dialect) => {
  let mock: MockFreeApi;
  let oneApiDb: { url: string; drop: () => Promise<void> };
  let tschkDb: { url: string; drop: () => Promise<void> } | undefined;
  let oneapi: OneApiFixture;
  let ctx: Ctx | undefined;

  beforeEach(async () => {
    mock = await startMockFreeApi({ defaultBehaviour: 'live' });
    oneApiDb = await freshDatabaseUrl(dialect);
  });
  afterEach(async () => {
    await ctx?.daemon.stop();
    ctx = undefined;
    await oneapi?.close();
    await mock.close();
    await oneApiDb.drop();
    await tschkDb?.drop();
    tschkDb = undefined;
  });

  async function start(opts: { flavor?: OneApiFlavor; tschk?: Dialect; env?: Record<string, string> } = {}) {
    tschkDb = await freshDatabaseUrl(opts.tschk ?? 'sqlite');
    ctx = await testDaemon(tschkDb.url, {
      TSCHK_RETRIES: '0',
      TSCHK_ONEAPI_DATABASE_URL: oneApiDb.url,
      TSCHK_ONEAPI_FLAVOR: opts.flavor ?? 'one-api',
      TokenStatuCheckUrls__DeepTokenCheckUrl: mock.checkUrl,
      ...opts.env,
    });
    return ctx;
  }
  const run = (c: Ctx) => c.daemon.runNow({ trigger: 'cli', force: true });
  const dead = (...tokens: string[]) => tokens.forEach((t) => mock.setBehaviour(t, 'dead'));
  const oneApiTokens = async (c: Ctx) => {
    const p = (await findProvider(c.db, 'deep'))!;
    return Object.fromEntries((await poolTokens(c.db, p.id, 'oneapi')).map((t) => [t.secret, t]));
  };

  it('flag: disables a channel whose tokens are all dead, with its abilities, and leaves the rest (tschk on SQLite)', async () => {
    oneapi = await createOneApi(oneApiDb.url, 'one-api');
    const allDead = await oneapi.addChannel({ key: 'tok-a1-aaaaaaaaaaa,tok-a2-aaaaaaaaaaa', baseUrl: `${mock.baseUrl}/v1` });
    const someDead = await oneapi.addChannel({ key: 'tok-b1-bbbbbbbbbbb, tok-b2-bbbbbbbbbbb', baseUrl: `${mock.baseUrl}/` });
    const human = await oneapi.addChannel({ key: 'tok-c1-ccccccccccc', baseUrl: mock.baseUrl, status: 2 });
    const live = await oneapi.addChannel({ key: LIVE, baseUrl: mock.baseUrl });
    const elsewhere = await oneapi.addChannel({ key: 'tok-x1-xxxxxxxxxxx', baseUrl: 'http://qwen-free-api:8000' });
    dead('tok-a1-aaaaaaaaaaa', 'tok-a2-aaaaaaaaaaa', 'tok-b1-bbbbbbbbbbb', 'tok-c1-ccccccccccc', 'tok-x1-xxxxxxxxxxx');
    const c = await start();

    const first = await run(c);
    expect(first).toMatchObject({ checked: 8, dead: 3, pruned: 0 });
    expect((await oneapi.channel(allDead)).status).toBe(1);

    const second = await run(c);
    expect(second).toMatchObject({ checked: 8, dead: 3, pruned: 3, held: 0 });
    expect(await oneapi.channel(allDead)).toMatchObject({ status: 3, key: 'tok-a1-aaaaaaaaaaa,tok-a2-aaaaaaaaaaa' });
    expect(await oneapi.abilities(allDead)).toEqual([false, false, false, false]);
    expect((await oneapi.channel(someDead)).status).toBe(1);
    expect(await oneapi.abilities(someDead)).toEqual([true, true, true, true]);
    expect(await oneapi.channel(human)).toMatchObject({ status: 2, test_time: 0 });
    expect(await oneapi.abilities(human)).toEqual([false, false, false, false]);
    expect((await oneapi.channel(elsewhere)).test_time).toBe(0);
    for (const id of [allDead, someDead, live]) expect((await oneapi.channel(id)).test_time).toBeGreaterThan(1_700_000_000);
    expect(mock.calls.map((x) => x.token)).not.toContain('tok-c1-ccccccccccc');
    expect(mock.calls.map((x) => x.token)).not.toContain('tok-x1-xxxxxxxxxxx');

    const tokens = await oneApiTokens(c);
    expect(Object.keys(tokens)).toHaveLength(8);
    expect(tokens['tok-b1-bbbbbbbbbbb']).toMatchObject({ state: 'invalid', source: 'oneapi', source_ref: String(someDead) });
    expect(tokens['tok-b2-bbbbbbbbbbb']!.state).toBe('active');
    expect(c.log.entries().some((e) => e.msg === 'One-API channel disabled' && e.channel === allDead)).toBe(true);
    for (const t of ['tok-a1-aaaaaaaaaaa', 'tok-b1-bbbbbbbbbbb', 'tok-live-1-llllllllll']) expect(c.log.text).not.toContain(t);
  });

  it('delete: rewrites a multi-token key without its dead tokens, disables what cannot be rewritten, and re-enables on recovery (tschk on the same dialect)', async () => {
    oneapi = await createOneApi(oneApiDb.url, 'new-api');
    const allDead = await oneapi.addChannel({ key: 'tok-a1-aaaaaaaaaaa,tok-a2-aaaaaaaaaaa', baseUrl: mock.baseUrl });
    const partly = await oneapi.addChannel({ key: 'tok-b1-bbbbbbbbbbb,tok-b2-bbbbbbbbbbb,tok-b3-bbbbbbbbbbb', baseUrl: mock.baseUrl });
    const multiKey = await oneapi.addChannel({ key: 'tok-m1-mmmmmmmmmmm\ntok-m2-mmmmmmmmmmm', baseUrl: mock.baseUrl });
    await oneapi.addChannel({ key: LIVE, baseUrl: mock.baseUrl });
    dead('tok-a1-aaaaaaaaaaa', 'tok-a2-aaaaaaaaaaa', 'tok-b2-bbbbbbbbbbb', 'tok-m1-mmmmmmmmmmm');
    const c = await start({ flavor: 'new-api', tschk: dialect, env: { TSCHK_PRUNE: 'delete' } });

    await run(c);
    const s = await run(c);

    expect(s).toMatchObject({ pruned: 4, held: 0 });
    expect(await oneapi.channel(partly)).toMatchObject({ status: 1, key: 'tok-b1-bbbbbbbbbbb,tok-b3-bbbbbbbbbbb' });
    expect(await oneapi.abilities(partly)).toEqual([true, true, true, true]);
    expect(await oneapi.channel(allDead)).toMatchObject({ status: 3, key: 'tok-a1-aaaaaaaaaaa,tok-a2-aaaaaaaaaaa' });
    expect(await oneapi.abilities(allDead)).toEqual([false, false, false, false]);
    expect(JSON.parse((await oneapi.channel(allDead)).other_info!)).toMatchObject({
      source: 'admin',
      status_reason: 'tschk: all tokens dead',
      status_time: expect.any(Number),
    });
    expect(await oneapi.channel(multiKey)).toMatchObject({ status: 3, key: 'tok-m1-mmmmmmmmmmm\ntok-m2-mmmmmmmmmmm' });
    expect(JSON.parse((await oneapi.channel(multiKey)).other_info!).status_reason).toContain('multi-key');
    expect((await listArchive(c.db, {})).map((a) => [a.secret, a.reason, a.source, a.source_ref])).toEqual([
      ['tok-b2-bbbbbbbbbbb', 'pruned', 'oneapi', String(partly)],
    ]);
    const tokens = await oneApiTokens(c);
    expect(tokens['tok-b2-bbbbbbbbbbb']).toBeUndefined();
    expect([tokens['tok-a1-aaaaaaaaaaa']!.state, tokens['tok-a2-aaaaaaaaaaa']!.state, tokens['tok-m1-mmmmmmmmmmm']!.state]).toEqual([
      'invalid',
      'invalid',
      'invalid',
    ]);

    // a1 comes back: the channel tschk disabled is enabled again, and its dead a2 can now leave the key
    mock.setBehaviour('tok-a1-aaaaaaaaaaa', 'live');
    await run(c);
    expect(await oneapi.channel(allDead)).toMatchObject({ status: 1, key: 'tok-a1-aaaaaaaaaaa' });
    expect(await oneapi.abilities(allDead)).toEqual([true, true, true, true]);
    expect(JSON.parse((await oneapi.channel(allDead)).other_info!).status_reason).toBe('tschk: tokens live again');
    expect((await oneapi.channel(multiKey)).status).toBe(3);

    // the admin removes the dead line of the multi-key channel: tschk enables the channel it disabled
    await oneapi.setKey(multiKey, 'tok-m2-mmmmmmmmmmm\ntok-m3-mmmmmmmmmmm');
    await run(c);
    expect((await oneapi.channel(multiKey)).status).toBe(1);
    expect((await listArchive(c.db, {})).map((a) => [a.secret, a.reason])).toContainEqual(['tok-m1-mmmmmmmmmmm', 'source_removed']);

    // restore puts a pruned token back into its channel's key
    const r = await restoreArchived(c.daemon.context, fingerprint('tok-b2-bbbbbbbbbbb'));
    expect(r.into).toBe(`One-API channel ${partly}`);
    expect((await oneapi.channel(partly)).key).toBe('tok-b1-bbbbbbbbbbb,tok-b3-bbbbbbbbbbb,tok-b2-bbbbbbbbbbb');
    expect((await oneApiTokens(c))['tok-b2-bbbbbbbbbbb']).toMatchObject({ state: 'active', source: 'oneapi' });
  });

  /**
   * An admin saves a channel's key after tschk read it and before tschk writes it. On the servers
   * the test holds the row, waits until tschk's compare-and-set is blocked on it, saves the new key
   * and lets go. SQLite has one writer at a time and tschk runs in this process, so a trigger drops
   * tschk's write as a changed key would, and the admin's save is committed right after: made by the
   * trigger, it would roll back with tschk's One-API transaction.
   */
  async function adminSavesKeyDuringWrite(id: number, plannedKey: string, adminKey: string, act: () => Promise<unknown>): Promise<void> {
    const target = parseDatabaseUrl(oneApiDb.url)!;
    const admin = openTarget<any>(target);
    try {
      if (dialect === 'sqlite') {
        await sql
          .raw(
            `CREATE TRIGGER admin_saves_key BEFORE UPDATE OF key ON channels WHEN NEW.key = '${plannedKey}' BEGIN SELECT RAISE(IGNORE); END`,
          )
          .execute(admin.kysely);
        try {
          await act();
        } finally {
          await sql.raw('DROP TRIGGER admin_saves_key').execute(admin.kysely);
          await oneapi.setKey(id, adminKey);
        }
        return;
      }
      const blocked =
        dialect === 'postgres'
          ? sql<{ n: unknown }>`select count(*) as n from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database()`
          : sql<{
              n: unknown;
            }>`select count(*) as n from information_schema.processlist where command = 'Query' and info like 'update \`channels\` set \`key\`%'`;
      let acting: Promise<unknown> | undefined;
      await admin.kysely.transaction().execute(async (trx) => {
        await trx.selectFrom('channels').select('id').where('id', '=', id).forUpdate().execute();
        acting = act();
        // Answered after the lock is let go; meanwhile a failure must not go unhandled.
        acting.catch(() => {});
        await waitFor(async () => Number((await blocked.execute(admin.kysely)).rows[0]?.n) > 0, 10_000, 'tschk writes the key');
        await trx.updateTable('channels').set({ key: adminKey }).where('id', '=', id).execute();
      });
      await acting;
    } finally {
      await admin.close();
    }
  }

  it('delete: a key the admin saves between tschk’s read and its write is left as the admin saved it, and its dead token is flagged, not archived', async () => {
    oneapi = await createOneApi(oneApiDb.url, 'one-api');
    const partly = await oneapi.addChannel({ key: 'tok-b1-bbbbbbbbbbb,tok-b2-bbbbbbbbbbb,tok-b3-bbbbbbbbbbb', baseUrl: mock.baseUrl });
    await oneapi.addChannel({ key: LIVE, baseUrl: mock.baseUrl });
    dead('tok-b2-bbbbbbbbbbb');
    const c = await start({ env: { TSCHK_PRUNE: 'delete' } });
    await run(c);

    const adminKey = 'tok-b1-bbbbbbbbbbb,tok-b2-bbbbbbbbbbb,tok-b3-bbbbbbbbbbb,tok-b4-bbbbbbbbbbb';
    await adminSavesKeyDuringWrite(partly, 'tok-b1-bbbbbbbbbbb,tok-b3-bbbbbbbbbbb', adminKey, () => run(c));
    expect((await oneapi.channel(partly)).key).toBe(adminKey);
    expect(await listArchive(c.db, {})).toEqual([]);
    expect((await oneApiTokens(c))['tok-b2-bbbbbbbbbbb']).toMatchObject({ state: 'invalid', source: 'oneapi' });
    expect(c.log.entries().some((e) => e.level === 'warn' && /channel key changed while tschk edited it/.test(String(e.msg)))).toBe(true);

    // the next run takes the dead token out of the key the admin saved, and keeps the admin's new one
    await run(c);
    expect((await oneapi.channel(partly)).key).toBe('tok-b1-bbbbbbbbbbb,tok-b3-bbbbbbbbbbb,tok-b4-bbbbbbbbbbb');
    expect((await listArchive(c.db, {})).map((a) => [a.secret, a.reason])).toEqual([['tok-b2-bbbbbbbbbbb', 'pruned']]);
    expect((await oneApiTokens(c))['tok-b2-bbbbbbbbbbb']).toBeUndefined();
  });

  it('writes a channel disabled by a prune, and enabled again on recovery, into each of its tokens’ event log with the run and the reason', async () => {
    oneapi = await createOneApi(oneApiDb.url, 'one-api');
    const channel = await oneapi.addChannel({ key: 'tok-e1-eeeeeeeeeee,tok-e2-eeeeeeeeeee', baseUrl: mock.baseUrl });
    await oneapi.addChannel({ key: LIVE, baseUrl: mock.baseUrl });
    dead('tok-e1-eeeeeeeeeee', 'tok-e2-eeeeeeeeeee');
    const c = await start({ tschk: dialect });
    const r1 = (await run(c)).runId;
    const r2 = (await run(c)).runId;
    expect((await oneapi.channel(channel)).status).toBe(3);
    mock.setBehaviour('tok-e2-eeeeeeeeeee', 'live');
    const r3 = (await run(c)).runId;
    expect((await oneapi.channel(channel)).status).toBe(1);

    // The README's "why did this token go away" query, for each token of the channel.
    const events = async (secret: string) =>
      (
        await sql<{ event: string; reason: string | null; run_id: unknown; actor: string | null }>`
          SELECT at, event, reason, run_id, actor FROM token_events WHERE fingerprint = ${fingerprint(secret)} ORDER BY id`.execute(
          c.db.kysely,
        )
      ).rows.map((r) => [r.event, r.reason, r.run_id === null ? null : Number(r.run_id), r.actor]);
    const disabled = ['channel_disabled', `channel ${channel}: tschk: all tokens dead`, r2, 'run'];
    const enabled = ['channel_enabled', `channel ${channel}: tschk: tokens live again`, r3, 'run'];
    expect(await events('tok-e1-eeeeeeeeeee')).toEqual([
      ['suspect', 'upstream_rejected', r1, 'run'],
      ['invalid', 'confirmed_dead', r2, 'run'],
      disabled,
      enabled,
    ]);
    expect(await events('tok-e2-eeeeeeeeeee')).toEqual([
      ['suspect', 'upstream_rejected', r1, 'run'],
      ['invalid', 'confirmed_dead', r2, 'run'],
      disabled,
      ['recovered', expect.stringMatching(/\(was invalid\)$/), r3, 'run'],
      enabled,
    ]);
  });

  it('never enables a channel it did not disable, nor one a human took over', async () => {
    oneapi = await createOneApi(oneApiDb.url, 'one-api');
    const oneApiOwn = await oneapi.addChannel({ key: 'tok-o1-ooooooooooo', baseUrl: mock.baseUrl, status: 3 });
    const ours = await oneapi.addChannel({ key: 'tok-d1-ddddddddddd', baseUrl: mock.baseUrl });
    await oneapi.addChannel({ key: LIVE, baseUrl: mock.baseUrl });
    dead('tok-d1-ddddddddddd');
    const c = await start({ tschk: dialect });
    await run(c);
    await run(c);
    expect((await oneapi.channel(ours)).status).toBe(3);

    await oneapi.setStatus(ours, 2); // a human looked and parked it
    mock.setBehaviour('tok-d1-ddddddddddd', 'live');
    await run(c);
    expect((await oneapi.channel(ours)).status).toBe(2);
    expect((await oneapi.channel(oneApiOwn)).status).toBe(3);
    expect(await oneapi.abilities(oneApiOwn)).toEqual([false, false, false, false]);

    await oneapi.setStatus(ours, 3); // One-API's own auto-disable, later: still not ours
    await run(c);
    expect((await oneapi.channel(ours)).status).toBe(3);
  });

  it('takes channels named by TSCHK_ONEAPI_CHANNELS, whatever their base URL', async () => {
    oneapi = await createOneApi(oneApiDb.url, 'one-api');
    const named = await oneapi.addChannel({ key: 'tok-n1-nnnnnnnnnnn', baseUrl: '' });
    await oneapi.addChannel({ key: 'tok-u1-uuuuuuuuuuu', baseUrl: mock.baseUrl });
    const c = await start({ env: { TSCHK_ONEAPI_CHANNELS: `deep:${named}` } });
    expect(Object.keys(await oneApiTokens(c))).toEqual(['tok-n1-nnnnnnnnnnn']);
  });

  it('keeps running when the One-API database cannot be reached, without showing its password', async () => {
    oneapi = await createOneApi(oneApiDb.url, 'one-api');
    const bad =
      dialect === 'sqlite'
        ? `sqlite:${oneApiDb.url.slice('sqlite:'.length)}.missing`
        : oneApiDb.url.replace(/\/\/([^:@/]+)(?::[^@]*)?@([^:/]+):\d+/, '//$1:s3cr3t-pw@$2:1');
    const c = await start({ env: { TSCHK_ONEAPI_DATABASE_URL: bad } });
    const s = await run(c);
    expect(s.status).toBe('done');
    expect(c.log.text).toContain('One-API channels could not be synced');
    expect(c.log.text).not.toContain('s3cr3t-pw');
  });

  if (dialect === 'mysql') {
    it('reads the original’s ConnectionStrings__TS_Database', async () => {
      oneapi = await createOneApi(oneApiDb.url, 'one-api');
      await oneapi.addChannel({ key: 'tok-t1-ttttttttttt', baseUrl: mock.baseUrl });
      const u = new URL(oneApiDb.url);
      const ado = `server=${u.hostname};port=${u.port};database=${u.pathname.slice(1)};userid=${decodeURIComponent(u.username)};password=${decodeURIComponent(u.password)};`;
      const c = await start({ env: { TSCHK_ONEAPI_DATABASE_URL: '', ConnectionStrings__TS_Database: ado } });
      expect(Object.keys(await oneApiTokens(c))).toEqual(['tok-t1-ttttttttttt']);
    });
  }
});
