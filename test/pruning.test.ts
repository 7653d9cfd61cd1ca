import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { runCli, type CliIo } from '../src/cli.js';
import { listArchive } from '../src/db/archive.js';
import { listHistory } from '../src/db/history.js';
import { upsertProvider } from '../src/db/providers.js';
import { findRun } from '../src/db/runs.js';
import { importTokens, listTokens } from '../src/db/tokens.js';
import { fingerprint } from '../src/secret.js';
import { describeEachDialect, freshDatabaseUrl } from './helpers/databases.js';
import { testDaemon } from './helpers/daemon.js';
import { startMockFreeApi, type MockFreeApi } from './helpers/mock-free-api.js';
import { answers, PATHS, startMockOfficial, type MockOfficial } from './helpers/mock-official.js';

type Ctx = Awaited<ReturnType<typeof testDaemon>>;

const LIVE = ['tok-live-1-aaaaaaaaaa', 'tok-live-2-bbbbbbbbbb', 'tok-live-3-cccccccccc', 'tok-live-4-dddddddddd'];
const DEAD = 'tok-dead-1-eeeeeeeeee';

describeEachDialect('pruning', (dialect) => {
  let mock: MockFreeApi;
  let database: { url: string; drop: () => Promise<void> };
  let ctx: Ctx | undefined;

  beforeEach(async () => {
    mock = await startMockFreeApi({ defaultBehaviour: 'live' });
    database = await freshDatabaseUrl(dialect);
  });
  afterEach(async () => {
    await ctx?.daemon.stop();
    ctx = undefined;
    await mock.close();
    await database.drop();
  });

  async function start(env: Record<string, string> = {}) {
    ctx = await testDaemon(database.url, { TSCHK_RETRIES: '0', ...env });
    const p = await upsertProvider(ctx.db, { name: 'deep', kind: 'free-api', checkUrl: mock.checkUrl });
    return { ctx, p };
  }
  const byToken = async (c: Ctx) => Object.fromEntries((await listTokens(c.db, {})).map((t) => [t.secret, t]));
  const run = (c: Ctx, extra: { forcePrune?: boolean } = {}) => c.daemon.runNow({ trigger: 'cli', force: true, ...extra });

  it('flags a token on its second dead verdict, not its first', async () => {
    const { ctx, p } = await start();
    mock.setBehaviour(DEAD, 'dead');
    await importTokens(ctx.db, { providerId: p.id, pool: 'default', entries: [...LIVE, DEAD], source: 'cli' });

    const first = await run(ctx);
    expect(first).toMatchObject({ dead: 1, pruned: 0, held: 0 });
    expect((await byToken(ctx))[DEAD]).toMatchObject({ state: 'suspect', consecutive_dead: 1, invalid_since: null });

    const second = await run(ctx);
    expect(second).toMatchObject({ dead: 1, pruned: 1, held: 0 });
    expect(second.providers[0]!.prunedTokens.map((t) => t.fingerprint)).toEqual([fingerprint(DEAD)]);
    const flagged = (await byToken(ctx))[DEAD]!;
    expect(flagged).toMatchObject({ state: 'invalid', consecutive_dead: 2 });
    expect(ctx.db.dialect.readTime(flagged.invalid_since)).toBeInstanceOf(Date);
    expect(await findRun(ctx.db, second.runId)).toMatchObject({ pruned: 1, held: 0 });
    for (const t of LIVE) expect((await byToken(ctx))[t]!.state).toBe('active');

    // a flagged token stays flagged while it stays dead, and is not pruned twice
    expect(await run(ctx)).toMatchObject({ dead: 1, pruned: 0 });
    expect(ctx.log.text).not.toContain(DEAD);
  });

  it('holds pruning when an outage answers dead for every token, and --force-prune overrides it', async () => {
    const { ctx, p } = await start();
    mock.setDefault('dead');
    await importTokens(ctx.db, { providerId: p.id, pool: 'default', entries: [...LIVE, DEAD], source: 'cli' });

    await run(ctx);
    const held = await run(ctx);

    expect(held).toMatchObject({ dead: 5, pruned: 0, held: 5 });
    expect(held.providers[0]!.heldReason).toContain('5 of 5');
    expect(await findRun(ctx.db, held.runId)).toMatchObject({ pruned: 0, held: 5 });
    expect((await listTokens(ctx.db, {})).map((t) => t.state)).toEqual(['suspect', 'suspect', 'suspect', 'suspect', 'suspect']);
    expect(ctx.log.entries().some((e) => e.level === 'warn' && String(e.msg).startsWith('pruning held'))).toBe(true);

    // as a human types it: no --force, the tokens were checked moments ago; --force-prune asks them again
    const forced = await ctx.daemon.runNow({ trigger: 'cli', forcePrune: true });
    expect(forced).toMatchObject({ checked: 5, pruned: 5, held: 0 });
    expect((await listTokens(ctx.db, {})).map((t) => t.state)).toEqual(['invalid', 'invalid', 'invalid', 'invalid', 'invalid']);
  });

  it('holds a run scoped to one pool when the provider’s other pools answered dead too', async () => {
    const { ctx, p } = await start();
    mock.setDefault('dead');
    await importTokens(ctx.db, { providerId: p.id, pool: 'default', entries: LIVE.slice(0, 2), source: 'cli' });
    await importTokens(ctx.db, { providerId: p.id, pool: 'free', entries: LIVE.slice(2), source: 'cli' });
    await run(ctx);

    // Two of two in this pool is below the breaker's minimum, but four of four in the provider is an outage.
    const scoped = await ctx.daemon.runNow({ trigger: 'api', provider: 'deep', pool: 'default', force: true });
    expect(scoped).toMatchObject({ dead: 2, pruned: 0, held: 2 });
    expect(scoped.providers[0]!.heldReason).toContain('4 of 4');
    expect((await listTokens(ctx.db, {})).map((t) => t.state)).toEqual(['suspect', 'suspect', 'suspect', 'suspect']);
  });

  it('prunes in a run scoped to one pool when the provider’s other pools are live', async () => {
    const { ctx, p } = await start();
    mock.setBehaviour(LIVE[0]!, 'dead');
    mock.setBehaviour(LIVE[1]!, 'dead');
    await importTokens(ctx.db, { providerId: p.id, pool: 'default', entries: LIVE.slice(0, 2), source: 'cli' });
    await importTokens(ctx.db, { providerId: p.id, pool: 'free', entries: [...LIVE.slice(2), DEAD], source: 'cli' });
    await run(ctx);

    expect(await ctx.daemon.runNow({ trigger: 'api', provider: 'deep', pool: 'default', force: true })).toMatchObject({
      dead: 2,
      pruned: 2,
      held: 0,
    });
  });

  it('asks the provider’s canaries in a run scoped to another pool', async () => {
    const { ctx, p } = await start();
    const canary = 'tok-canary-live-zzzzzzzz';
    await importTokens(ctx.db, { providerId: p.id, pool: 'default', entries: [canary], source: 'cli', expect: 'live' });
    await importTokens(ctx.db, { providerId: p.id, pool: 'default', entries: LIVE, source: 'cli' });
    await importTokens(ctx.db, {
      providerId: p.id,
      pool: 'free',
      entries: ['tok-free-1-hhhhhhhhhh', 'tok-free-2-iiiiiiiiii'],
      source: 'cli',
    });
    await run(ctx);

    // the upstream starts calling valid tokens dead (the deepseek-free-api release docs/free-api.md warns of)
    mock.setDefault('dead');
    const free = () => ctx.daemon.runNow({ trigger: 'api', provider: 'deep', pool: 'free', force: true });
    await free();
    const second = await free();
    expect(second.providers[0]).toMatchObject({ unreliable: true, pruned: 0 });
    expect((await listTokens(ctx.db, { pool: 'free' })).map((t) => t.state)).toEqual(['active', 'active']);
  });

  it('does not count unknown answers or flagged tokens towards the breaker’s ratio', async () => {
    const { ctx, p } = await start();
    const dead = ['tok-x-1-aaaaaaaaaaaa', 'tok-x-2-bbbbbbbbbbbb', 'tok-x-3-cccccccccccc'];
    const slow = ['tok-s-1-dddddddddddd', 'tok-s-2-eeeeeeeeeeee', 'tok-s-3-ffffffffffff', 'tok-s-4-gggggggggggg'];
    for (const t of dead) mock.setBehaviour(t, 'dead');
    for (const t of slow) mock.setBehaviour(t, 'html_502');
    await importTokens(ctx.db, { providerId: p.id, pool: 'default', entries: [...dead, ...slow, LIVE[0]!], source: 'cli' });

    await run(ctx);
    // 3 of 8 checked are dead, but 3 of the 4 that answered: that is what an outage looks like
    expect(await run(ctx)).toMatchObject({ dead: 3, unknown: 4, pruned: 0, held: 3 });
  });

  it('holds the provider when a canary flips, and leaves flagged tokens flagged', async () => {
    const { ctx, p } = await start();
    const canary = 'tok-canary-live-zzzzzzzz';
    mock.setBehaviour(DEAD, 'dead');
    await importTokens(ctx.db, { providerId: p.id, pool: 'default', entries: [canary], source: 'cli', expect: 'live' });
    await importTokens(ctx.db, { providerId: p.id, pool: 'default', entries: [...LIVE, DEAD, 'tok-gone-2-ffffffffff'], source: 'cli' });
    mock.setBehaviour('tok-gone-2-ffffffffff', 'dead');
    await run(ctx);
    await run(ctx);
    expect((await byToken(ctx))['tok-gone-2-ffffffffff']!.state).toBe('invalid');

    // the upstream starts lying: everything dead, the flagged token suddenly "live"
    mock.setDefault('dead');
    mock.setBehaviour('tok-gone-2-ffffffffff', 'live');
    mock.setBehaviour(DEAD, 'dead');
    const s = await run(ctx);

    expect(s.providers[0]).toMatchObject({ unreliable: true, unreachable: false, pruned: 0 });
    expect(s.providers[0]!.heldReason).toContain('canary');
    const tokens = await byToken(ctx);
    expect(tokens['tok-gone-2-ffffffffff']!.state).toBe('invalid');
    for (const t of LIVE) expect(tokens[t]).toMatchObject({ state: 'active', last_reason: 'provider_unreliable' });
  });

  it('counts as held the tokens a canary saved from confirmation', async () => {
    const { ctx, p } = await start();
    mock.setDefault('dead');
    await importTokens(ctx.db, { providerId: p.id, pool: 'default', entries: [...LIVE], source: 'cli' });
    await run(ctx); // all suspect: 1 dead each
    await importTokens(ctx.db, { providerId: p.id, pool: 'default', entries: ['tok-canary-dead-yyyyyyy'], source: 'cli', expect: 'dead' });
    mock.setBehaviour('tok-canary-dead-yyyyyyy', 'live'); // a "dead" canary answering live: the upstream lies
    const s = await run(ctx);
    expect(s).toMatchObject({ pruned: 0, held: 4 });
    expect((await listTokens(ctx.db, {})).filter((t) => t.expect === null).map((t) => [t.state, t.consecutive_dead])).toEqual(
      LIVE.map(() => ['suspect', 1]),
    );
  });

  it('never prunes a canary that is dead as expected', async () => {
    const { ctx, p } = await start();
    const canary = 'tok-canary-dead-xxxxxxx';
    mock.setBehaviour(canary, 'dead');
    await importTokens(ctx.db, { providerId: p.id, pool: 'default', entries: [canary], source: 'cli', expect: 'dead' });
    await importTokens(ctx.db, { providerId: p.id, pool: 'default', entries: LIVE, source: 'cli' });
    for (let i = 0; i < 3; i++) expect(await run(ctx)).toMatchObject({ pruned: 0, held: 0 });
    expect((await byToken(ctx))[canary]!.state).not.toBe('invalid');
  });

  it('changes nothing for a provider that answers nothing', async () => {
    const { ctx, p } = await start();
    mock.setDefault('dead');
    await importTokens(ctx.db, { providerId: p.id, pool: 'default', entries: LIVE, source: 'cli' });
    await run(ctx);
    mock.setDefault('html_502');
    const s = await run(ctx);
    expect(s.providers[0]).toMatchObject({ unreachable: true, pruned: 0, held: 0 });
    expect((await listTokens(ctx.db, {})).map((t) => [t.state, t.consecutive_dead])).toEqual(LIVE.map(() => ['suspect', 1]));
  });

  it('records only with TSCHK_PRUNE=off', async () => {
    const { ctx, p } = await start({ TSCHK_PRUNE: 'off' });
    mock.setBehaviour(DEAD, 'dead');
    await importTokens(ctx.db, { providerId: p.id, pool: 'default', entries: [...LIVE, DEAD], source: 'cli' });
    await run(ctx);
    await run(ctx);
    expect(await run(ctx)).toMatchObject({ dead: 1, pruned: 0 });
    expect((await byToken(ctx))[DEAD]).toMatchObject({ state: 'suspect', consecutive_dead: 3 });
  });

  it('brings a flagged token back when it answers live again, unless TSCHK_RECOVER=false', async () => {
    for (const recover of ['true', 'false']) {
      const db = await freshDatabaseUrl(dialect);
      const c = await testDaemon(db.url, { TSCHK_RETRIES: '0', TSCHK_RECOVER: recover });
      try {
        const p = await upsertProvider(c.db, { name: 'deep', kind: 'free-api', checkUrl: mock.checkUrl });
        await importTokens(c.db, { providerId: p.id, pool: 'default', entries: [...LIVE, DEAD], source: 'cli' });
        mock.setBehaviour(DEAD, 'dead');
        await run(c);
        await run(c);
        mock.setBehaviour(DEAD, 'live');
        const s = await run(c);
        const t = (await byToken(c))[DEAD]!;
        if (recover === 'true') {
          expect(t).toMatchObject({ state: 'active', consecutive_dead: 0, invalid_since: null });
          expect(s.providers[0]!.recovered.map((r) => r.fingerprint)).toEqual([fingerprint(DEAD)]);
        } else {
          expect(t).toMatchObject({ state: 'invalid', consecutive_dead: 0 });
        }
      } finally {
        await c.daemon.stop();
        await db.drop();
      }
    }
  });

  it('deletes confirmed dead tokens into the archive, which export and restore bring back', async () => {
    const started = await start({ TSCHK_PRUNE: 'delete' });
    const p = started.p;
    let c = started.ctx;
    mock.setBehaviour(DEAD, 'dead');
    await importTokens(c.db, { providerId: p.id, pool: 'default', entries: [...LIVE, DEAD], source: 'cli', label: 'batch-7' });
    await run(c);
    const s = await run(c);

    expect(s).toMatchObject({ pruned: 1 });
    expect(Object.keys(await byToken(c))).not.toContain(DEAD);
    const [archived] = await listArchive(c.db, {});
    expect(archived).toMatchObject({
      secret: DEAD,
      provider_name: 'deep',
      pool: 'default',
      reason: 'pruned',
      last_verdict: 'dead',
      label: 'batch-7',
      restored_at: null,
    });
    // history stays with the token gone
    expect((await listHistory(c.db, { limit: 100 })).filter((h) => h.fingerprint === fingerprint(DEAD))).toHaveLength(2);

    const env = { TSCHK_DATABASE_URL: database.url };
    await c.daemon.stop();
    const exported = await cli(env, ['tokens', 'export', '--archived']);
    expect(exported).toMatchObject({ code: 0, stdout: `${DEAD}\n` });
    const restored = await cli(env, ['tokens', 'restore', fingerprint(DEAD)]);
    expect(restored.code).toBe(0);
    expect(restored.stdout).toContain('deep/default');
    expect(restored.stdout).not.toContain(DEAD);

    c = ctx = await testDaemon(database.url);
    const back = (await listTokens(c.db, {})).find((t) => t.secret === DEAD)!;
    expect(back).toMatchObject({ state: 'active', consecutive_dead: 0, position: LIVE.length + 1, source: 'cli', label: 'batch-7' });
    expect(c.db.dialect.readTime((await listArchive(c.db, {}))[0]!.restored_at)).toBeInstanceOf(Date);
    expect((await cli(env, ['tokens', 'export', '--archived'])).stdout).toBe('');
    const again = await cli(env, ['tokens', 'restore', fingerprint(DEAD)]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('already restored');
  });

  it('deletes, once TSCHK_PRUNE=delete, a token an earlier run flagged that still answers dead', async () => {
    const flagging = await start();
    mock.setBehaviour(DEAD, 'dead');
    await importTokens(flagging.ctx.db, { providerId: flagging.p.id, pool: 'default', entries: [...LIVE, DEAD], source: 'cli' });
    await run(flagging.ctx);
    await run(flagging.ctx);
    expect((await byToken(flagging.ctx))[DEAD]).toMatchObject({ state: 'invalid' });
    await flagging.ctx.daemon.stop();

    const deleting = await start({ TSCHK_PRUNE: 'delete' });
    const s = await run(deleting.ctx);

    expect(s).toMatchObject({ dead: 1, pruned: 1 });
    expect((await byToken(deleting.ctx))[DEAD]).toBeUndefined();
    expect((await listArchive(deleting.ctx.db, {})).map((a) => a.secret)).toEqual([DEAD]);
  });

  it('deletes a dead token that came from One-API once TSCHK_ONEAPI_DATABASE_URL is unset, as any other', async () => {
    const { ctx, p } = await start({ TSCHK_PRUNE: 'delete' });
    mock.setBehaviour(DEAD, 'dead');
    await importTokens(ctx.db, { providerId: p.id, pool: 'default', entries: [...LIVE, DEAD], source: 'oneapi' });
    await run(ctx);
    const s = await run(ctx);

    expect(s).toMatchObject({ dead: 1, pruned: 1 });
    expect((await byToken(ctx))[DEAD]).toBeUndefined();
    expect((await listArchive(ctx.db, {})).map((a) => a.secret)).toEqual([DEAD]);
  });

  it('exports flagged tokens one per line', async () => {
    const { ctx, p } = await start();
    mock.setBehaviour(DEAD, 'dead');
    await importTokens(ctx.db, { providerId: p.id, pool: 'default', entries: [...LIVE, DEAD], source: 'cli' });
    await run(ctx);
    await run(ctx);
    await ctx.daemon.stop();
    expect(await cli({ TSCHK_DATABASE_URL: database.url }, ['tokens', 'export', '--state', 'invalid'])).toMatchObject({
      code: 0,
      stdout: `${DEAD}\n`,
    });
  });
});

describeEachDialect('pruning exhausted keys', (dialect) => {
  const RICH = ['sk-deepseek-rich-00000000000000001', 'sk-deepseek-rich-00000000000000002', 'sk-deepseek-rich-00000000000000003'];
  const EMPTY = 'sk-deepseek-empty-0000000000000004';
  let official: MockOfficial;
  let database: { url: string; drop: () => Promise<void> };
  let ctx: Ctx | undefined;
  beforeEach(async () => {
    official = await startMockOfficial();
    for (const k of RICH) official.setKey(PATHS.deepseek, k, answers.deepseekBalance(true, [{ currency: 'CNY', total: '50.00' }]));
    official.setKey(PATHS.deepseek, EMPTY, answers.deepseekBalance(false, [{ currency: 'CNY', total: '0.00' }]));
    database = await freshDatabaseUrl(dialect);
  });
  afterEach(async () => {
    await ctx?.daemon.stop();
    ctx = undefined;
    await official.close();
    await database.drop();
  });

  async function twoRuns(env: Record<string, string>) {
    ctx = await testDaemon(database.url, { TSCHK_RETRIES: '0', ...env });
    const p = await upsertProvider(ctx.db, { name: 'ds', kind: 'deepseek-key', checkUrl: official.baseUrl });
    await importTokens(ctx.db, { providerId: p.id, pool: 'default', entries: [...RICH, EMPTY], source: 'cli' });
    const runs = [await ctx.daemon.runNow({ trigger: 'cli', force: true }), await ctx.daemon.runNow({ trigger: 'cli', force: true })];
    return { runs, tokens: Object.fromEntries((await listTokens(ctx.db, {})).map((t) => [t.secret, t])) };
  }

  it('flags a key with no balance on its second exhausted answer with TSCHK_PRUNE_EXHAUSTED=true', async () => {
    const { runs, tokens } = await twoRuns({ TSCHK_PRUNE_EXHAUSTED: 'true' });
    expect(runs.map((r) => ({ exhausted: r.exhausted, pruned: r.pruned }))).toEqual([
      { exhausted: 1, pruned: 0 },
      { exhausted: 1, pruned: 1 },
    ]);
    expect(runs[1]!.providers[0]!.prunedTokens.map((t) => t.fingerprint)).toEqual([fingerprint(EMPTY)]);
    expect(tokens[EMPTY]).toMatchObject({ state: 'invalid' });
    for (const k of RICH) expect(tokens[k]!.state).toBe('active');
  });

  it('keeps a key with no balance by default', async () => {
    const { runs, tokens } = await twoRuns({});
    expect(runs.map((r) => ({ exhausted: r.exhausted, pruned: r.pruned }))).toEqual([
      { exhausted: 1, pruned: 0 },
      { exhausted: 1, pruned: 0 },
    ]);
    expect(tokens[EMPTY]).toMatchObject({ state: 'active', consecutive_dead: 0 });
  });
});

async function cli(env: Record<string, string>, argv: string[]) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d) => (out += String(d)));
  stderr.on('data', (d) => (err += String(d)));
  const io: CliIo = {
    env: { LOG_LEVEL: 'silent', ...env },
    stdout,
    stderr,
    stdin: new PassThrough(),
    shutdownRequested: new Promise(() => {}),
  };
  const code = await runCli(argv, io);
  return { code, stdout: out, stderr: err };
}
