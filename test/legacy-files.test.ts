import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  appendFileSync,
  existsSync,
  readdirSync,
  symlinkSync,
  lstatSync,
  readlinkSync,
} from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { listArchive } from '../src/db/archive.js';
import { listHistory } from '../src/db/history.js';
import { findProvider, upsertProvider } from '../src/db/providers.js';
import { importTokens, poolTokens } from '../src/db/tokens.js';
import { fingerprint } from '../src/secret.js';
import { syncSources } from '../src/sources/index.js';
import { restoreArchived } from '../src/sources/restore.js';
import { rewriteTokenFile } from '../src/sources/token-file.js';
import { describeEachDialect, freshDatabaseUrl } from './helpers/databases.js';
import { testDaemon } from './helpers/daemon.js';
import { tschk } from './helpers/cli.js';
import { startMockFreeApi, type MockFreeApi } from './helpers/mock-free-api.js';
import { waitFor } from './helpers/wait.js';
import { TestClock } from './helpers/clock.js';

type Ctx = Awaited<ReturnType<typeof testDaemon>>;

const T = {
  a: 'tok-file-a-aaaaaaaaaa',
  b: 'tok-file-b-bbbbbbbbbb',
  c: 'tok-file-c-cccccccccc',
  d: 'tok-file-d-dddddddddd',
  e: 'tok-file-e-eeeeeeeeee',
  f: 'tok-file-f-ffffffffff',
};

describeEachDialect('legacy token files', (dialect) => {
  let mock: MockFreeApi;
  let database: { url: string; drop: () => Promise<void> };
  let dir: string;
  let ctx: Ctx | undefined;

  beforeEach(async () => {
    mock = await startMockFreeApi({ defaultBehaviour: 'live' });
    database = await freshDatabaseUrl(dialect);
    dir = mkdtempSync(join(tmpdir(), 'tschk-legacy-'));
  });
  afterEach(async () => {
    await ctx?.daemon.stop();
    ctx = undefined;
    await mock.close();
    await database.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  const file = (rel: string) => join(dir, rel);
  const write = (rel: string, text: string) => {
    mkdirSync(join(dir, rel, '..'), { recursive: true });
    writeFileSync(file(rel), text);
  };
  const read = (rel: string) => readFileSync(file(rel), 'utf8');
  let clock: TestClock;
  async function start(env: Record<string, string> = {}) {
    clock = new TestClock();
    ctx = await testDaemon(
      database.url,
      {
        TSCHK_RETRIES: '0',
        TSCHK_LEGACY_DATA_DIR: dir,
        TokenStatuCheckUrls__DeepTokenCheckUrl: mock.checkUrl,
        ...env,
      },
      { clock },
    );
    return ctx;
  }
  const pool = async (c: Ctx, provider: string, name: string) => {
    const p = (await findProvider(c.db, provider))!;
    return (await poolTokens(c.db, p.id, name)).map((t) => ({
      secret: t.secret,
      position: t.position,
      source: t.source,
      source_ref: t.source_ref,
    }));
  };
  const run = (c: Ctx) => c.daemon.runNow({ trigger: 'cli', force: true });

  it('removes a token the user deletes from its file too, so the next sync does not bring it back', async () => {
    write('LLM-Deep/token.json', `${T.a}\n${T.b},${T.c}\n`);
    const c = await start();
    const [, b] = await poolTokens(c.db, (await findProvider(c.db, 'deep'))!.id, 'default');
    const cli = await tschk(['tokens', 'remove', '--fingerprint', b!.fingerprint], {
      TSCHK_DATABASE_URL: database.url,
      TSCHK_LEGACY_DATA_DIR: dir,
    });

    expect(cli).toMatchObject({ code: 0, stdout: expect.stringContaining('removed 1 token(s) from tschk and their source') });
    expect(read('LLM-Deep/token.json')).toBe(`${T.a}\n${T.c}\n`);
    await syncSources(c.daemon.context);
    expect((await pool(c, 'deep', 'default')).map((t) => t.secret)).toEqual([T.a, T.c]);
    expect((await listArchive(c.db, {})).map((a) => [a.fingerprint, a.reason])).toEqual([[b!.fingerprint, 'user_removed']]);
  });

  it('reads the original layout into pools, lines in order, whatever the whitespace', async () => {
    write('LLM-Deep/token.json', `\uFEFF${T.a}  \r\n\r\n ${T.b},${T.c} \r\n`);
    write('LLM-Deep/token2.json', `${T.d}\n`);
    write('LLM-Qwen/token.json', `${T.e}\n`); // no qwen configured: left alone
    const c = await start();

    expect(await pool(c, 'deep', 'default')).toEqual([
      { secret: T.a, position: 1, source: 'file', source_ref: 'LLM-Deep/token.json:1' },
      { secret: T.b, position: 2, source: 'file', source_ref: 'LLM-Deep/token.json:3' },
      { secret: T.c, position: 3, source: 'file', source_ref: 'LLM-Deep/token.json:3' },
    ]);
    expect(await pool(c, 'deep', 'free')).toEqual([{ secret: T.d, position: 1, source: 'file', source_ref: 'LLM-Deep/token2.json:1' }]);
    expect(await findProvider(c.db, 'qwen')).toBeUndefined();

    // a provider added later gets its folder synced at the next run
    await upsertProvider(c.db, { name: 'qwen', kind: 'free-api', checkUrl: mock.checkUrl });
    const s = await run(c);
    expect(s.checked).toBe(5);
    expect((await pool(c, 'qwen', 'default')).map((t) => t.secret)).toEqual([T.e]);
  });

  it('follows edits without a restart: new lines join, moved lines move, removed lines are archived with their history', async () => {
    write('LLM-Deep/token.json', `${T.a}\n${T.b}\n${T.c}\n`);
    const c = await start();
    await run(c);

    write('LLM-Deep/token.json', `${T.c}\n${T.a}\n${T.d}\n`);
    await syncSources(c.daemon.context, { provider: 'deep', pool: 'default' });

    expect((await pool(c, 'deep', 'default')).map((t) => [t.secret, t.position, t.source_ref])).toEqual([
      [T.c, 1, 'LLM-Deep/token.json:1'],
      [T.a, 2, 'LLM-Deep/token.json:2'],
      [T.d, 3, 'LLM-Deep/token.json:3'],
    ]);
    expect(await listArchive(c.db, {})).toMatchObject([
      { secret: T.b, reason: 'source_removed', provider_name: 'deep', pool: 'default', source: 'file' },
    ]);
    expect((await listHistory(c.db, { limit: 10 })).some((h) => h.fingerprint === fingerprint(T.b))).toBe(true);
    expect(c.log.text).toContain('token file synced');
    for (const t of Object.values(T)) expect(c.log.text).not.toContain(t);
  });

  it('a run of one pool reads only that pool’s file: a line removed from another pool’s file leaves it at that pool’s run', async () => {
    write('LLM-Deep/token.json', `${T.a}\n`);
    write('LLM-Deep/token2.json', `${T.b}\n${T.c}\n`);
    const c = await start();

    write('LLM-Deep/token.json', `${T.a}\n${T.d}\n`);
    write('LLM-Deep/token2.json', `${T.b}\n`);
    await c.daemon.runNow({ trigger: 'cli', force: true, provider: 'deep', pool: 'default' });
    expect((await pool(c, 'deep', 'default')).map((t) => t.secret)).toEqual([T.a, T.d]);
    expect((await pool(c, 'deep', 'free')).map((t) => t.secret)).toEqual([T.b, T.c]);
    expect(await listArchive(c.db, {})).toEqual([]);

    await c.daemon.runNow({ trigger: 'cli', force: true, provider: 'deep', pool: 'free' });
    expect((await pool(c, 'deep', 'free')).map((t) => t.secret)).toEqual([T.b]);
    expect((await listArchive(c.db, {})).map((a) => [a.secret, a.pool, a.reason])).toEqual([[T.c, 'free', 'source_removed']]);
  });

  it('changes nothing when the data folder disappears (an unmounted volume), but empties a pool whose file is deleted', async () => {
    write('LLM-Deep/token.json', `${T.a}\n`);
    write('LLM-Deep/token2.json', `${T.b}\n`);
    const c = await start();
    rmSync(file('LLM-Deep/token2.json'));
    await syncSources(c.daemon.context);
    expect(await pool(c, 'deep', 'free')).toEqual([]);

    rmSync(join(dir, 'LLM-Deep'), { recursive: true });
    await syncSources(c.daemon.context);
    expect((await pool(c, 'deep', 'default')).map((t) => t.secret)).toEqual([T.a]);
  });

  it('gives a file that reads empty for a moment (an editor saving it) a second before emptying its pool', async () => {
    write('LLM-Deep/token.json', `${T.a}\n${T.b}\n`);
    const c = await start();
    writeFileSync(file('LLM-Deep/token.json'), ''); // truncated, not yet written again
    // The editor writes the file again while tschk waits.
    clock.onSleep = () => writeFileSync(file('LLM-Deep/token.json'), `${T.a}\n${T.b}\n${T.c}\n`);
    await syncSources(c.daemon.context);
    clock.onSleep = undefined;
    expect(clock.sleeps).toEqual([1_000]);

    expect((await pool(c, 'deep', 'default')).map((t) => t.secret)).toEqual([T.a, T.b, T.c]);
    expect(await listArchive(c.db, {})).toEqual([]);

    writeFileSync(file('LLM-Deep/token.json'), ''); // emptied for good
    await syncSources(c.daemon.context);
    expect(await pool(c, 'deep', 'default')).toEqual([]);
    expect((await listArchive(c.db, {})).map((a) => [a.secret, a.reason])).toEqual([
      [T.a, 'source_removed'],
      [T.b, 'source_removed'],
      [T.c, 'source_removed'],
    ]);
  });

  it('puts imported tokens after the file’s and takes over an imported token that the file also lists', async () => {
    write('LLM-Deep/token.json', `${T.a}\n`);
    const c = await start();
    const p = (await findProvider(c.db, 'deep'))!;
    await importTokens(c.db, { providerId: p.id, pool: 'default', entries: [T.e, T.b], source: 'cli' });
    write('LLM-Deep/token.json', `${T.a}\n${T.b}\n${T.c}\n`);
    await syncSources(c.daemon.context, { provider: 'deep' });
    expect((await pool(c, 'deep', 'default')).map((t) => [t.secret, t.position, t.source])).toEqual([
      [T.a, 1, 'file'],
      [T.b, 2, 'file'],
      [T.c, 3, 'file'],
      [T.e, 4, 'cli'],
    ]);
  });

  it('syncs the DeepSeek files into their own providers, an account line whole', async () => {
    write('OfficialToken/deep_user.json', '13800000000-pass,word-1\r\nuser@example.com-secret\r\n');
    write('OfficialToken/deep_key.json', 'sk-key-one-1111111111\nsk-key-two-2222222222\n');
    const c = await start({ TSCHK_DEEPSEEK_API_URL: 'http://127.0.0.1:9/api', TSCHK_DEEPSEEK_PLATFORM_URL: 'http://127.0.0.1:9/platform' });

    expect(await findProvider(c.db, 'deep_user')).toMatchObject({ kind: 'deepseek-account', checkUrl: 'http://127.0.0.1:9/platform' });
    expect(await findProvider(c.db, 'deep_key')).toMatchObject({ kind: 'deepseek-key', checkUrl: 'http://127.0.0.1:9/api' });
    expect((await pool(c, 'deep_user', 'default')).map((t) => t.secret)).toEqual(['13800000000-pass,word-1', 'user@example.com-secret']);
    expect((await pool(c, 'deep_key', 'default')).map((t) => t.secret)).toEqual(['sk-key-one-1111111111', 'sk-key-two-2222222222']);
  });

  it('with delete, moves dead lines to expire_token.json, keeps the rest byte for byte, and archives them', async () => {
    const original = `${T.a}\r\n${T.b},${T.c}\r\n\r\n${T.d}  \r\n${T.e}\r\n${T.f}\r\n`;
    write('LLM-Deep/token.json', original);
    chmodSync(file('LLM-Deep/token.json'), 0o640);
    write('LLM-Deep/expire_token.json', 'tok-expired-long-ago-zz'); // no final newline
    for (const t of [T.c, T.d]) mock.setBehaviour(t, 'dead');
    const c = await start({ TSCHK_PRUNE: 'delete' });

    await run(c);
    expect(read('LLM-Deep/token.json')).toBe(original);
    const s = await run(c);

    expect(s).toMatchObject({ pruned: 2, held: 0 });
    expect(read('LLM-Deep/token.json')).toBe(`${T.a}\r\n${T.b}\r\n\r\n${T.e}\r\n${T.f}\r\n`);
    expect(statSync(file('LLM-Deep/token.json')).mode & 0o777).toBe(0o640);
    expect(read('LLM-Deep/expire_token.json')).toBe(`tok-expired-long-ago-zz\r\n${T.c}\r\n${T.d}\r\n`);
    expect((await listArchive(c.db, {})).map((a) => [a.secret, a.reason, a.source_ref])).toEqual([
      [T.c, 'pruned', 'LLM-Deep/token.json:2'],
      [T.d, 'pruned', 'LLM-Deep/token.json:4'],
    ]);
    // positions follow the new file at once
    expect((await pool(c, 'deep', 'default')).map((t) => [t.secret, t.position, t.source_ref])).toEqual([
      [T.a, 1, 'LLM-Deep/token.json:1'],
      [T.b, 2, 'LLM-Deep/token.json:2'],
      [T.e, 3, 'LLM-Deep/token.json:4'],
      [T.f, 4, 'LLM-Deep/token.json:5'],
    ]);
    expect(readdirSync(join(dir, 'LLM-Deep')).sort()).toEqual(['expire_token.json', 'token.json']);

    // restore puts the line back into its file
    const r = await restoreArchived(c.daemon.context, fingerprint(T.d));
    expect(r).toMatchObject({ provider: 'deep', pool: 'default', into: 'LLM-Deep/token.json', alreadyPresent: false });
    expect(read('LLM-Deep/token.json')).toBe(`${T.a}\r\n${T.b}\r\n\r\n${T.e}\r\n${T.f}\r\n${T.d}\r\n`);
    expect((await pool(c, 'deep', 'default')).at(-1)).toMatchObject({ secret: T.d, position: 5, source: 'file' });
    for (const t of Object.values(T)) expect(c.log.text).not.toContain(t);
  });

  it('keeps a line the user adds while a run is checking', async () => {
    write('LLM-Deep/token.json', `${T.a}\n${T.b}\n${T.c}\n`);
    mock.setBehaviour(T.b, 'dead');
    const c = await start({ TSCHK_PRUNE: 'delete', TSCHK_PROVIDER_CONCURRENCY: '1' });
    await run(c);

    let release!: () => void;
    mock.setBehaviour(T.b, { kind: 'held', until: new Promise<void>((r) => (release = r)), then: 'dead' });
    const running = run(c);
    await waitFor(() => mock.calls.filter((x) => x.token === T.b).length === 2, 5_000, 'the second check of T.b');
    appendFileSync(file('LLM-Deep/token.json'), `${T.e}\n`); // after our read, before our write
    release();
    expect(await running).toMatchObject({ pruned: 1 });

    expect(read('LLM-Deep/token.json')).toBe(`${T.a}\n${T.c}\n${T.e}\n`);
    expect(read('LLM-Deep/expire_token.json')).toBe(`${T.b}\n`);
    expect((await pool(c, 'deep', 'default')).map((t) => t.secret)).toEqual([T.a, T.c, T.e]);
  });

  it('with delete, flags the dead tokens of a file it cannot rewrite, leaves the file alone and says why', async (t) => {
    write('LLM-Deep/token.json', `${T.a}\n${T.b}\n`);
    // Root ignores permission bits: an immutable folder is what refuses tschk its temp file here.
    if (!setImmutable(file('LLM-Deep'), true)) return t.skip();
    try {
      mock.setBehaviour(T.b, 'dead');
      const c = await start({ TSCHK_PRUNE: 'delete' });
      await run(c);
      const s = await run(c);

      expect(s.providers[0]).toMatchObject({ pruned: 1 });
      expect(s.providers[0]!.error).toBeUndefined();
      expect(read('LLM-Deep/token.json')).toBe(`${T.a}\n${T.b}\n`);
      expect(readdirSync(join(dir, 'LLM-Deep'))).toEqual(['token.json']);
      expect((await pool(c, 'deep', 'default')).map((x) => x.secret)).toEqual([T.a, T.b]);
      const p = (await findProvider(c.db, 'deep'))!;
      expect((await poolTokens(c.db, p.id, 'default')).map((x) => x.state)).toEqual(['active', 'invalid']);
      expect(await listArchive(c.db, {})).toEqual([]);
      expect(c.log.entries().find((l) => l.pruned === 1)).toMatchObject({ flaggedInstead: 1 });
      expect(
        c.log
          .entries()
          .some(
            (l) =>
              l.level === 'error' &&
              /token file cannot be rewritten: its folder is read-only for tschk \(EPERM\)\. Its tokens stay in it/.test(String(l.msg)),
          ),
      ).toBe(true);
      // Still there and still dead next run: flagged already, it is no news, and its date stays.
      const flaggedSince = (await poolTokens(c.db, p.id, 'default'))[1]!.invalid_since;
      const again = await run(c);
      expect(again.providers[0]).toMatchObject({ pruned: 0, prunedTokens: [] });
      expect((await poolTokens(c.db, p.id, 'default'))[1]!.invalid_since).toEqual(flaggedSince);
      for (const x of Object.values(T)) expect(c.log.text).not.toContain(x);
    } finally {
      setImmutable(file('LLM-Deep'), false);
    }
  });

  it('with flag, marks dead file tokens invalid and never touches the file', async () => {
    write('LLM-Deep/token.json', `${T.a}\n${T.b}\n`);
    mock.setBehaviour(T.b, 'dead');
    const c = await start({ TSCHK_PRUNE: 'flag' });
    await run(c);
    await run(c);
    const p = (await findProvider(c.db, 'deep'))!;
    expect((await poolTokens(c.db, p.id, 'default')).map((t) => t.state)).toEqual(['active', 'invalid']);
    expect(read('LLM-Deep/token.json')).toBe(`${T.a}\n${T.b}\n`); // flag mode never touches the file
  });
});

describe('rewriting a token file', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tschk-rewrite-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('redoes its work on the user’s version when the file changes between its read and its rename', async () => {
    const path = join(dir, 'token.json');
    writeFileSync(path, 'T1\nT2\nT3\n');
    let edits = 0;
    const r = await rewriteTokenFile(path, new Set(['T2']), 'commas', {
      beforeRename: async () => {
        if (edits++ === 0) appendFileSync(path, 'T4\n');
      },
    });
    expect(r).toMatchObject({ removed: ['T2'] });
    expect(readFileSync(path, 'utf8')).toBe('T1\nT3\nT4\n');
    expect(readdirSync(dir)).toEqual(['token.json']);
  });

  it('gives up after three edits in a row and leaves the file as the user wrote it', async () => {
    const path = join(dir, 'token.json');
    writeFileSync(path, 'T1\nT2\n');
    let n = 0;
    const r = await rewriteTokenFile(path, new Set(['T2']), 'commas', { beforeRename: async () => appendFileSync(path, `U${n++}\n`) });
    expect(r).toEqual({ conflict: true });
    expect(readFileSync(path, 'utf8')).toBe('T1\nT2\nU0\nU1\nU2\n');
    expect(readdirSync(dir)).toEqual(['token.json']);
  });

  it('keeps a symbolic link a link and replaces the file it points to', async () => {
    mkdirSync(join(dir, 'real'));
    mkdirSync(join(dir, 'LLM-Deep'));
    const real = join(dir, 'real', 'tokens.txt');
    const link = join(dir, 'LLM-Deep', 'token.json');
    writeFileSync(real, 'T1\nT2\nT3\n');
    symlinkSync(real, link);

    expect(await rewriteTokenFile(link, new Set(['T2']), 'commas')).toMatchObject({ removed: ['T2'] });
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readlinkSync(link)).toBe(real);
    expect(readFileSync(real, 'utf8')).toBe('T1\nT3\n');
    expect(readdirSync(join(dir, 'real'))).toEqual(['tokens.txt']);
    expect(readdirSync(join(dir, 'LLM-Deep'))).toEqual(['token.json']);
  });

  it('leaves a file it cannot replace as it is and says why (a file bind-mounted on its own: EBUSY)', async () => {
    const path = join(dir, 'token.json');
    writeFileSync(path, 'T1\nT2\n');
    const busy = Object.assign(new Error("EBUSY: resource busy or locked, rename -> 'token.json'"), { code: 'EBUSY' });
    const r = await rewriteTokenFile(path, new Set(['T2']), 'commas', {
      beforeRename: async () => {
        throw busy;
      },
    });
    expect(r).toEqual({ unwritable: 'EBUSY' });
    expect(readFileSync(path, 'utf8')).toBe('T1\nT2\n');
    expect(readdirSync(dir)).toEqual(['token.json']);
  });

  it('removes nothing from a file that is gone', async () => {
    const path = join(dir, 'missing.json');
    expect(await rewriteTokenFile(path, new Set(['T1']), 'commas')).toMatchObject({ removed: [] });
    expect(existsSync(path)).toBe(false);
  });
});

/** `chattr ±i`; false when this machine cannot (not root, or a file system without the attribute). */
function setImmutable(path: string, on: boolean): boolean {
  return spawnSync('chattr', [on ? '+i' : '-i', path]).status === 0;
}
