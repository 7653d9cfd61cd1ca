// The real `tschk serve` process with a FIFO as token.json: it must come up, answer, and end on
// SIGTERM. A FIFO opened without O_NONBLOCK blocks one of libuv's threads, and then even
// process.exit() hangs, which only a real process shows.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startMockFreeApi, type MockFreeApi } from './helpers/mock-free-api.js';
import { startTschk, type TschkProcess } from './helpers/spawn.js';

const SECRET = 'api-secret-fifo-9Lx2';
const TOKENS = ['tok-serve-a-aaaaaaaaaa', 'tok-serve-b-bbbbbbbbbb'];
const GRACE_MS = 1_000;
/** The grace period plus a few seconds, as the README promises. */
const EXIT_WITHIN_MS = GRACE_MS + 4_000;
const ANSWER_WITHIN_MS = 3_000;
const FIFO_SKIPPED = 'token.json is a named pipe (FIFO), not a regular file: tschk does not read it; its tokens keep their last known list';

interface Served {
  process: TschkProcess;
  url: string;
  messages: () => unknown[];
}

describe('tschk serve with a FIFO as token.json (a real process)', () => {
  let dir: string;
  let mock: MockFreeApi;
  const children: TschkProcess[] = [];

  afterEach(async () => {
    for (const c of children.splice(0)) {
      c.kill('SIGKILL');
      await c.exited;
    }
    await mock?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function serve(): Promise<Served> {
    const child = startTschk(['serve'], {
      TSCHK_DATABASE_URL: `sqlite:${join(dir, 'tschk.db')}`,
      TSCHK_LEGACY_DATA_DIR: join(dir, 'data'),
      TokenStatuCheckUrls__DeepTokenCheckUrl: mock.checkUrl,
      UserAuthorization: SECRET,
      TSCHK_HTTP_PORT: '0',
      TSCHK_HTTP_HOST: '127.0.0.1',
      TSCHK_RUN_ON_START: 'false',
      TSCHK_RETRIES: '0',
      TSCHK_SHUTDOWN_GRACE_MS: String(GRACE_MS),
      LOG_LEVEL: 'info',
    });
    children.push(child);
    const listening = await child.waitForLog((l) => l.msg === 'HTTP listening');
    return { process: child, url: String(listening.url), messages: () => child.logs.map((l) => l.msg) };
  }

  const legacy = (s: Served, method: 'GET' | 'POST') =>
    fetch(`${s.url}/api/LLM_TokenCheck/Check/deep${method === 'GET' ? '?cached=1' : ''}`, {
      method,
      headers: { authorization: `Bearer ${SECRET}` },
      signal: AbortSignal.timeout(ANSWER_WITHIN_MS),
    }).then(async (r) => ({ status: r.status, body: (await r.json()) as { totalTokenCount: number } }));

  async function terminate(s: Served): Promise<number | null> {
    s.process.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), EXIT_WITHIN_MS)));
    const code = await Promise.race([s.process.exited.then((e) => e.code), late]);
    clearTimeout(timer);
    if (code === 'late') throw new Error(`tschk serve did not exit within ${EXIT_WITHIN_MS} ms of SIGTERM`);
    return code;
  }

  it('answers from the last known list and exits on SIGTERM, with the FIFO swapped in while it runs and then at start-up', async () => {
    dir = mkdtempSync(join(tmpdir(), 'tschk-serve-fifo-'));
    mock = await startMockFreeApi({ defaultBehaviour: 'live' });
    const file = join(dir, 'data', 'LLM-Deep', 'token.json');
    mkdirSync(join(dir, 'data', 'LLM-Deep'), { recursive: true });
    writeFileSync(file, TOKENS.join('\n') + '\n');

    const first = await serve();
    expect(await legacy(first, 'GET')).toMatchObject({ status: 200, body: { totalTokenCount: 2 } });
    rmSync(file);
    expect(spawnSync('mkfifo', [file]).status).toBe(0);
    expect(await legacy(first, 'POST')).toMatchObject({ status: 200, body: { totalTokenCount: 2 } });
    await first.process.waitForLog((l) => l.msg === FIFO_SKIPPED, 5_000);
    expect(await terminate(first)).toBe(0);

    const second = await serve();
    expect(await legacy(second, 'POST')).toMatchObject({ status: 200, body: { totalTokenCount: 2 } });
    expect(await terminate(second)).toBe(0);
    expect(second.messages().at(-1)).toBe('stopped');
  });
});
