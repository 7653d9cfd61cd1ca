import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { closeSync, constants, mkdirSync, mkdtempSync, open, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { Daemon } from '../src/daemon.js';
import { listArchive } from '../src/db/archive.js';
import { findProvider } from '../src/db/providers.js';
import { importTokens, poolTokens } from '../src/db/tokens.js';
import { createLogger } from '../src/logger.js';
import { fileReadLimits, unansweredReads } from '../src/sources/file-read.js';
import { syncSources } from '../src/sources/index.js';
import { reconcileLimits, reconcilePoolInBatches } from '../src/sources/reconcile.js';
import { CapturedLog } from './helpers/daemon.js';
import { describeEachDialect, freshDatabaseUrl } from './helpers/databases.js';
import { API_SECRET, servedDaemon, type Served } from './helpers/http.js';
import { startMockFreeApi, type MockFreeApi } from './helpers/mock-free-api.js';

const T = {
  a: 'tok-fault-a-aaaaaaaaaa',
  b: 'tok-fault-b-bbbbbbbbbb',
  c: 'tok-fault-c-cccccccccc',
  d: 'tok-fault-d-dddddddddd',
};
const TOKEN_FILE = 'LLM-Deep/token.json';
/** What a user would call "answers at once"; the code's own bound for a read is 5 s. */
const ANSWER_WITHIN_MS = 3_000;

describeEachDialect('token files that block or hold garbage', (dialect) => {
  let mock: MockFreeApi;
  let database: { url: string; drop: () => Promise<void> };
  let dir: string;
  const daemons: Array<{ daemon: Daemon }> = [];
  const stuck: Array<() => Promise<void>> = [];
  const timeoutMs = fileReadLimits.timeoutMs;
  const batches = { ...reconcileLimits };

  beforeEach(async () => {
    mock = await startMockFreeApi({ defaultBehaviour: 'live' });
    database = await freshDatabaseUrl(dialect);
    dir = mkdtempSync(join(tmpdir(), 'tschk-faults-'));
  });
  afterEach(async () => {
    for (const release of stuck.splice(0)) await release();
    // The abandoned calls answer once the threads are free; until then no token file is read.
    await until(async () => unansweredReads() === 0);
    fileReadLimits.timeoutMs = timeoutMs;
    Object.assign(reconcileLimits, batches);
    for (const d of daemons.splice(0)) await d.daemon.stop();
    await mock.close();
    await database.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  const path = (rel: string) => join(dir, rel);
  const write = (rel: string, content: string | Buffer) => {
    mkdirSync(join(dir, rel, '..'), { recursive: true });
    rmSync(path(rel), { force: true });
    writeFileSync(path(rel), content);
  };
  const fifo = (rel: string) => {
    rmSync(path(rel), { force: true });
    expect(spawnSync('mkfifo', [path(rel)]).status).toBe(0);
  };
  const env = (extra: Record<string, string> = {}) => ({
    TSCHK_RETRIES: '0',
    TSCHK_LEGACY_DATA_DIR: dir,
    TokenStatuCheckUrls__DeepTokenCheckUrl: mock.checkUrl,
    ...extra,
  });
  async function serve(extra: Record<string, string> = {}): Promise<Served> {
    const s = await servedDaemon(database.url, env(extra));
    daemons.push(s);
    return s;
  }
  const secrets = async (db: Served['db'], pool = 'default') => {
    const p = await findProvider(db, 'deep');
    return p ? (await poolTokens(db, p.id, pool)).map((t) => t.secret) : [];
  };
  /** A legacy request that must answer, and soon: a hang fails here instead of at the test timeout. */
  const legacy = (s: Served, method: 'GET' | 'POST') =>
    fetch(`${s.base}/api/LLM_TokenCheck/Check/deep${method === 'GET' ? '?cached=1' : ''}`, {
      method,
      headers: { authorization: `Bearer ${API_SECRET}` },
      signal: AbortSignal.timeout(ANSWER_WITHIN_MS),
    }).then(async (r) => ({ status: r.status, body: (await r.json()) as { totalTokenCount: number } }));
  const errors = (s: { log: CapturedLog }) => s.log.entries().filter((l) => l.level === 'error');
  const noSecretsIn = (s: { log: CapturedLog }, ...more: string[]) => {
    for (const t of [...Object.values(T), ...more]) expect(s.log.text).not.toContain(t);
  };

  /**
   * Occupies every thread of libuv's pool with an open() of a FIFO that no one writes: from then
   * on, every file call of this process waits, as on a hung network mount. Returns the release.
   */
  function hangFileCalls(): () => Promise<void> {
    const fifos = mkdtempSync(join(tmpdir(), 'tschk-hang-'));
    const threads = Number(process.env.UV_THREADPOOL_SIZE) || 4;
    const opened: Array<Promise<number>> = [];
    for (let i = 0; i < threads; i++) {
      const f = join(fifos, `f${i}`);
      expect(spawnSync('mkfifo', [f]).status).toBe(0);
      opened.push(new Promise((resolve, reject) => open(f, 'r', (err, fd) => (err ? reject(err) : resolve(fd)))));
    }
    let released: Promise<void> | undefined;
    const release = () =>
      (released ??= (async () => {
        // A writer on each FIFO lets its blocked open() return.
        const writers = opened.map((_, i) => openSync(join(fifos, `f${i}`), constants.O_WRONLY | constants.O_NONBLOCK));
        for (const fd of await Promise.all(opened)) closeSync(fd);
        for (const fd of writers) closeSync(fd);
        rmSync(fifos, { recursive: true, force: true });
      })());
    stuck.push(release);
    return release;
  }

  it('answers legacy requests and runs from the last known list when a FIFO replaces token.json, and reads the file again once it is one', async () => {
    write(TOKEN_FILE, `${T.a}\n${T.b}\n`);
    const s = await serve();
    fifo(TOKEN_FILE);

    expect(await legacy(s, 'POST')).toMatchObject({ status: 200, body: { totalTokenCount: 2 } });
    expect(await legacy(s, 'GET')).toMatchObject({ status: 200, body: { totalTokenCount: 2 } });
    const run = await s.call('POST', '/api/v1/runs', { body: { provider: 'deep', force: true } });
    expect(run.status).toBe(202);
    await until(async () => (await s.call('GET', `/api/v1/runs/${run.json().run_id}`)).json().run.status === 'done');

    expect(await secrets(s.db)).toEqual([T.a, T.b]);
    expect(await listArchive(s.db, {})).toEqual([]);
    const fifoErrors = errors(s).filter((l) => l.file === TOKEN_FILE);
    expect(fifoErrors.length).toBeGreaterThanOrEqual(3); // one per sync: POST, GET, the run
    expect(fifoErrors[0]).toMatchObject({
      provider: 'deep',
      pool: 'default',
      reason: 'not_regular',
      msg: 'token.json is a named pipe (FIFO), not a regular file: tschk does not read it; its tokens keep their last known list',
    });

    write(TOKEN_FILE, `${T.a}\n${T.c}\n`);
    expect(await legacy(s, 'GET')).toMatchObject({ body: { totalTokenCount: 2 } });
    expect(await secrets(s.db)).toEqual([T.a, T.c]);
    expect((await listArchive(s.db, {})).map((a) => [a.secret, a.reason])).toEqual([[T.b, 'source_removed']]);
    noSecretsIn(s);
  });

  it('comes up with a FIFO as token.json at start-up, keeps the list of the last start, and stops', async () => {
    write(TOKEN_FILE, `${T.a}\n${T.b}\n`);
    const first = await serve();
    await first.daemon.stop();
    fifo(TOKEN_FILE);

    const s = await serve();
    expect(await legacy(s, 'POST')).toMatchObject({ status: 200, body: { totalTokenCount: 2 } });
    expect(errors(s).some((l) => l.file === TOKEN_FILE && l.reason === 'not_regular')).toBe(true);
    expect(await secrets(s.db)).toEqual([T.a, T.b]);
    await s.daemon.stop();
    expect(s.log.text).toContain('"msg":"stopped"');
  });

  it('listens on HTTP while the start-up sync waits on a file that does not answer, and stop() does not wait for it', async () => {
    write(TOKEN_FILE, `${T.a}\n`);
    fileReadLimits.timeoutMs = 600_000;
    const log = new CapturedLog();
    const config = loadConfig({
      TSCHK_DATABASE_URL: database.url,
      TSCHK_HTTP_PORT: '0',
      TSCHK_HTTP_HOST: '127.0.0.1',
      TSCHK_RUN_ON_START: 'false',
      UserAuthorization: API_SECRET,
      ...env(),
    });
    const hung = hangFileCalls();
    const daemon = await Daemon.create(config, { logger: createLogger('debug', log.stream) });
    daemons.push({ daemon });
    let synced = false;
    void daemon.sourcesSynced.then(() => (synced = true));
    await daemon.start();

    const health = await fetch(`${daemon.httpAddress!.url}/healthz`, { signal: AbortSignal.timeout(ANSWER_WITHIN_MS) });
    expect(health.status).toBe(200);
    expect(synced).toBe(false);
    await daemon.stop();
    expect(synced).toBe(true);
    expect(log.text).toContain('"msg":"stopped"');
    await hung();
  });

  it('abandons a read that does not answer after the bound, answers from the last known list, and reads the file again once it answers', async () => {
    write(TOKEN_FILE, `${T.a}\n${T.b}\n`);
    const s = await serve();
    fileReadLimits.timeoutMs = 50;
    write(TOKEN_FILE, `${T.c}\n`);
    const release = hangFileCalls();

    expect(await legacy(s, 'GET')).toMatchObject({ status: 200, body: { totalTokenCount: 2 } });
    expect(await legacy(s, 'GET')).toMatchObject({ status: 200, body: { totalTokenCount: 2 } });
    const fileErrors = errors(s).filter((l) => l.file === TOKEN_FILE);
    expect(fileErrors.map((l) => [l.reason, l.msg])).toEqual([
      [
        'timeout',
        'token.json did not answer a read within 0.05 s (a hung network mount?): the read is abandoned; its tokens keep their last known list',
      ],
      [
        'unanswered',
        expect.stringMatching(
          /^token\.json has not answered a read started \d+ s ago \(a hung network mount\?\): not read again until it does; its tokens keep their last known list$/,
        ),
      ],
    ]);
    expect(await secrets(s.db)).toEqual([T.a, T.b]);
    expect(await listArchive(s.db, {})).toEqual([]);

    await release();
    await until(async () => (await legacy(s, 'GET')).body.totalTokenCount === 1);
    expect(await secrets(s.db)).toEqual([T.c]);
  });

  it('skips lines that cannot be tokens with one warning naming them, and never sends them upstream', async () => {
    const huge = 'H'.repeat(1024 * 1024);
    const escape = 'esc\u001b[31mred';
    write(TOKEN_FILE, `${T.a}\n${huge}\n${T.b}\n${escape}\n\n${T.c}\n`);
    const s = await serve();
    await s.daemon.runNow({ trigger: 'cli', force: true });

    expect(await secrets(s.db)).toEqual([T.a, T.b, T.c]);
    expect(mock.calls.map((c) => c.token).sort()).toEqual([T.a, T.b, T.c]);
    const warnings = s.log.entries().filter((l) => l.level === 'warn' && l.file === TOKEN_FILE);
    expect(warnings).toEqual([
      expect.objectContaining({
        skipped: 2,
        lines: [2, 4],
        problems: { too_long: 1, control_character: 1 },
        msg: 'token file has 2 lines that cannot be tokens (control characters, not UTF-8, or longer than 4096 characters), skipped: lines 2, 4',
      }),
      expect.objectContaining({ skipped: 2 }), // the run's own sync
    ]);
    noSecretsIn(s, huge.slice(0, 64), escape);
  });

  it('leaves a binary file, and one that is mostly not tokens, alone: the pool keeps its last known list', async () => {
    write(TOKEN_FILE, `${T.a}\n${T.b}\n`);
    const s = await serve();

    const binary = Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]), randomBytes(200_000)]);
    write(TOKEN_FILE, binary);
    await syncSources(s.daemon.context);
    expect(await secrets(s.db)).toEqual([T.a, T.b]);
    expect(errors(s).at(-1)).toMatchObject({
      file: TOKEN_FILE,
      binary: true,
      msg: expect.stringContaining('token file holds binary data'),
    });

    // Padded so that the NUL comes after the first 8000 bytes: a bad line, not a binary file.
    write(TOKEN_FILE, `${' '.repeat(8100)}${T.c}\nnot\u0000a token\n\u0007bell\n${'L'.repeat(5000)}\n`);
    await syncSources(s.daemon.context);
    expect(await secrets(s.db)).toEqual([T.a, T.b]);
    expect(errors(s).at(-1)).toMatchObject({
      file: TOKEN_FILE,
      lines: 4,
      bad: 3,
      msg: 'token file does not look like a token list: 3 of its 4 lines cannot be tokens (lines 2, 3, 4): left alone, its tokens keep their last known list',
    });
    expect(await listArchive(s.db, {})).toEqual([]);
    expect(mock.calls).toEqual([]);
  });

  it('with delete, leaves the token file as it is when expire_token.json is a FIFO, and flags the dead token', async () => {
    write(TOKEN_FILE, `${T.a}\n${T.b}\n`);
    mock.setBehaviour(T.b, 'dead');
    const s = await serve({ TSCHK_PRUNE: 'delete' });
    fifo('LLM-Deep/expire_token.json');
    await s.daemon.runNow({ trigger: 'cli', force: true });
    const second = await s.daemon.runNow({ trigger: 'cli', force: true });

    expect(second.providers[0]).toMatchObject({ pruned: 1 });
    expect(readFileSync(path(TOKEN_FILE), 'utf8')).toBe(`${T.a}\n${T.b}\n`);
    const p = (await findProvider(s.db, 'deep'))!;
    expect((await poolTokens(s.db, p.id, 'default')).map((t) => [t.secret, t.state])).toEqual([
      [T.a, 'active'],
      [T.b, 'invalid'],
    ]);
    expect(await listArchive(s.db, {})).toEqual([]);
    expect(
      errors(s).some(
        (l) =>
          l.msg === 'expire_token.json is a named pipe (FIFO), not a regular file: tschk does not read it; its tokens stay in it for now',
      ),
    ).toBe(true);
  });

  it('syncs a file of many batches: order, duplicates across batches, imports after the file’s, only removed lines archived', async () => {
    // Batches of 500 and pages of 200: the file's 1,201 lines span three batches and, at 128 bytes
    // a line, three reads of the file; the pool is looked through in seven pages.
    reconcileLimits.batch = 500;
    reconcileLimits.page = 200;
    const n = 1_200;
    const tok = (i: number) => `tok-many-${String(i).padStart(6, '0')}-${'z'.repeat(111)}`;
    const lines = Array.from({ length: n }, (_, i) => tok(i));
    lines.splice(600, 0, tok(1)); // a duplicate in another batch: the first line wins
    write(TOKEN_FILE, '');
    const s = await serve();
    const p = (await findProvider(s.db, 'deep'))!;
    await importTokens(s.db, { providerId: p.id, pool: 'default', entries: ['imported-only-1111', tok(700)], source: 'cli' });

    write(TOKEN_FILE, lines.join('\n') + '\n');
    await syncSources(s.daemon.context, { provider: 'deep', pool: 'default' });
    let pool = await poolTokens(s.db, p.id, 'default');
    expect(pool.map((t) => t.secret)).toEqual([...Array.from({ length: n }, (_, i) => tok(i)), 'imported-only-1111']);
    expect(pool.map((t) => t.position)).toEqual(Array.from({ length: n + 1 }, (_, i) => i + 1));
    expect(pool[700]).toMatchObject({ source: 'file', source_ref: `${TOKEN_FILE}:702` });
    expect(pool[n]).toMatchObject({ source: 'cli' });

    // the last line moves to the top, lines of tokens 100–199 go
    const edited = [tok(n - 1), ...Array.from({ length: n - 1 }, (_, i) => tok(i)).filter((_, i) => i < 100 || i >= 200)];
    write(TOKEN_FILE, edited.join('\n') + '\n');
    await syncSources(s.daemon.context, { provider: 'deep', pool: 'default' });
    pool = await poolTokens(s.db, p.id, 'default');
    expect(pool.map((t) => t.secret)).toEqual([...edited, 'imported-only-1111']);
    expect(pool.map((t) => t.position)).toEqual(Array.from({ length: edited.length + 1 }, (_, i) => i + 1));
    const archived = await listArchive(s.db, {});
    expect(archived.map((a) => a.secret).sort()).toEqual(Array.from({ length: 100 }, (_, i) => tok(100 + i)));
    expect(new Set(archived.map((a) => a.reason))).toEqual(new Set(['source_removed']));
  });

  it('removes nothing on the word of a listing that turned out incomplete', async () => {
    write(TOKEN_FILE, `${T.a}\n${T.b}\n`);
    const s = await serve();
    const p = (await findProvider(s.db, 'deep'))!;
    const target = { providerId: p.id, providerName: 'deep', pool: 'default', source: 'file' as const };
    const r = await reconcilePoolInBatches(s.db, target, [[{ secret: T.d, sourceRef: `${TOKEN_FILE}:1` }]], { complete: () => false });
    expect(r).toEqual({ added: 1, removed: 0, incomplete: true });
    expect((await secrets(s.db)).sort()).toEqual([T.a, T.b, T.d].sort());
    expect(await listArchive(s.db, {})).toEqual([]);
  });
});

async function until(cond: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('condition not met');
}
