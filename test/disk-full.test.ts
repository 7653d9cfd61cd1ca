// A real full disk: the SQLite file lives on a 2 MiB tmpfs that the test fills up (needs root).
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { upsertProvider } from '../src/db/providers.js';
import { findRun } from '../src/db/runs.js';
import { importTokens } from '../src/db/tokens.js';
import { tschk } from './helpers/cli.js';
import { API_SECRET, servedDaemon, type Served } from './helpers/http.js';
import { startMockFreeApi, type MockFreeApi } from './helpers/mock-free-api.js';

const isRoot = process.getuid?.() === 0;
const TOKENS = Array.from({ length: 12 }, (_, i) => `disk-full-token-${String(i).padStart(2, '0')}-Qm7x`);
const NEW_TOKEN = 'disk-full-new-token-Zr4p';

/** Writes until the filesystem says ENOSPC; what is left is less than one page. */
function fill(path: string): void {
  const fd = openSync(path, 'w');
  const page = Buffer.alloc(4096, 7);
  try {
    for (;;) writeSync(fd, page);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    closeSync(fd);
  }
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe.skipIf(!isRoot)('a full disk under SQLite [sqlite]', () => {
  let dir: string;
  let mounted = false;
  let mock: MockFreeApi;
  let s: Served;
  let url: string;
  const filler = () => join(dir, 'filler');

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tschk-full-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2M', 'tmpfs', dir]);
    mounted = true;
    url = `sqlite:${join(dir, 'tschk.db')}`;
    // Slow answers: the disk fills while the run's checks are in flight, after its row was written.
    mock = await startMockFreeApi({ defaultBehaviour: { kind: 'delay', ms: 150, then: 'live' } });
    s = await servedDaemon(url, { TSCHK_PRUNE: 'off', TSCHK_RETRIES: '0' });
    const p = await upsertProvider(s.db, { name: 'deep', kind: 'free-api', checkUrl: mock.checkUrl });
    await importTokens(s.db, { providerId: p.id, pool: 'default', entries: TOKENS, source: 'cli' });
  });

  afterAll(async () => {
    await s?.daemon.stop();
    await mock?.close();
    if (mounted) execFileSync('umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('says "database or disk is full" in the run, the CLI, the API and /healthz, and recovers once space is freed', async () => {
    const running = s.daemon.runNow({ trigger: 'cli', force: true });
    await until('the first check', () => (mock.calls.length > 0 ? true : undefined));
    fill(filler());

    const summary = await running;
    expect(summary.status).toBe('failed');
    expect(summary.error).toContain('database or disk is full');
    expect(s.log.text).toContain('database or disk is full');
    expect(s.log.text).not.toContain('cannot rollback');
    // Its row cannot be closed while nothing can be written: it is closed once the disk has room.
    expect((await findRun(s.db, summary.runId))?.status).toBe('running');

    const health = await s.call('GET', '/healthz', { auth: null });
    expect(health.status).toBe(200);
    expect(health.json()).toMatchObject({ status: 'degraded', db: 'ok', reason: expect.stringContaining('database or disk is full') });
    const metrics = await s.call('GET', '/metrics');
    expect(metrics.text).toMatch(/^tschk_database_writable 0$/m);

    const env = { TSCHK_DATABASE_URL: url, UserAuthorization: API_SECRET };
    const cli = await tschk(['tokens', 'import', '--provider', 'deep', '-'], env, `${NEW_TOKEN}\n`);
    expect(cli).toMatchObject({ code: 1, stdout: '', stderr: 'tschk: database or disk is full\n' });

    const post = await s.call('POST', '/api/v1/tokens', { body: { provider: 'deep', tokens: [NEW_TOKEN] } });
    expect(post.status).toBe(503);
    expect(post.json()).toEqual({
      error: {
        code: 'storage_full',
        message: 'the database cannot store anything more (database or disk is full (SQLITE_FULL)); free space on its disk',
      },
    });

    unlinkSync(filler());

    const again = await s.call('POST', '/api/v1/tokens', { body: { provider: 'deep', tokens: [NEW_TOKEN] } });
    expect(again.status).toBe(200);
    expect(again.json()).toMatchObject({ added: 1 });
    // That write woke the closer: the failed run's row now tells what happened.
    const closed = await until('the run row closed', async () => {
      const row = await findRun(s.db, summary.runId);
      return row?.status === 'running' ? undefined : row;
    });
    expect(closed).toMatchObject({ status: 'failed', error: expect.stringContaining('database or disk is full') });
    expect((await s.call('GET', '/healthz', { auth: null })).json()).toMatchObject({ status: 'ok' });

    const cliAgain = await tschk(['tokens', 'import', '--provider', 'deep', '-'], env, `${NEW_TOKEN}-2\n`);
    expect(cliAgain).toMatchObject({ code: 0, stdout: 'imported 1 token(s) into deep/default; skipped 0 duplicate(s)\n' });
    expect(await s.daemon.runNow({ trigger: 'cli', force: true })).toMatchObject({ status: 'done', checked: TOKENS.length + 2 });

    const everything = [s.log.text, cli.stderr, ...s.answers.map((a) => a.text)].join('\n');
    for (const t of [...TOKENS, NEW_TOKEN]) expect(everything).not.toContain(t);
  });
});
