// The real `tschk serve` process with a FIFO as token.json: it must come up, answer, and end on
// SIGTERM. A FIFO opened without O_NONBLOCK blocks one of libuv's threads, and then even
// process.exit() hangs, which only a real process shows.
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startMockFreeApi, type MockFreeApi } from './helpers/mock-free-api.js';

const SECRET = 'api-secret-fifo-9Lx2';
const TOKENS = ['tok-serve-a-aaaaaaaaaa', 'tok-serve-b-bbbbbbbbbb'];
const GRACE_MS = 1_000;
/** The grace period plus a few seconds, as the README promises. */
const EXIT_WITHIN_MS = GRACE_MS + 4_000;
const ANSWER_WITHIN_MS = 3_000;

interface Served {
  child: ChildProcess;
  url: string;
  messages: string[];
  exited: Promise<number | null>;
}

describe('tschk serve with a FIFO as token.json (a real process)', () => {
  let build: string;
  let dir: string;
  let mock: MockFreeApi;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    build = mkdtempSync(join(tmpdir(), 'tschk-build-'));
    symlinkSync(resolve('node_modules'), join(build, 'node_modules'));
    await promisify(execFile)(process.execPath, [
      resolve('node_modules/typescript/bin/tsc'),
      '-p',
      'tsconfig.build.json',
      '--outDir',
      build,
    ]);
    writeFileSync(join(build, 'package.json'), '{"type":"module"}');
  }, 120_000);
  afterAll(() => rmSync(build, { recursive: true, force: true }));
  afterEach(async () => {
    for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await mock?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function serve(): Promise<Served> {
    const child = spawn(process.execPath, [join(build, 'src', 'main.js'), 'serve'], {
      env: {
        PATH: process.env.PATH,
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
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    const messages: string[] = [];
    let url = '';
    let rest = '';
    let seen: () => void = () => {};
    child.stdout.on('data', (chunk: Buffer) => {
      const lines = (rest + chunk.toString('utf8')).split('\n');
      rest = lines.pop()!;
      for (const line of lines) {
        const entry = JSON.parse(line) as { msg: string; url?: string };
        messages.push(entry.msg);
        if (entry.msg === 'HTTP listening') url = entry.url!;
      }
      seen();
    });
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const deadline = Date.now() + 20_000;
    while (url === '') {
      if (child.exitCode !== null || Date.now() > deadline)
        throw new Error(`tschk serve did not listen; it logged: ${messages.join(' | ')}`);
      await Promise.race([new Promise<void>((r) => (seen = r)), exited, new Promise((r) => setTimeout(r, 200))]);
    }
    return { child, url, messages, exited };
  }

  const legacy = (s: Served, method: 'GET' | 'POST') =>
    fetch(`${s.url}/api/LLM_TokenCheck/Check/deep${method === 'GET' ? '?cached=1' : ''}`, {
      method,
      headers: { authorization: `Bearer ${SECRET}` },
      signal: AbortSignal.timeout(ANSWER_WITHIN_MS),
    }).then(async (r) => ({ status: r.status, body: (await r.json()) as { totalTokenCount: number } }));

  async function terminate(s: Served): Promise<number | null> {
    s.child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), EXIT_WITHIN_MS)));
    const code = await Promise.race([s.exited, late]);
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
    await until(() =>
      first.messages.includes(
        'token.json is a named pipe (FIFO), not a regular file: tschk does not read it; its tokens keep their last known list',
      ),
    );
    expect(await terminate(first)).toBe(0);

    const second = await serve();
    expect(await legacy(second, 'POST')).toMatchObject({ status: 200, body: { totalTokenCount: 2 } });
    expect(await terminate(second)).toBe(0);
    expect(second.messages.at(-1)).toBe('stopped');
  });
});

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(cond()).toBe(true);
}
