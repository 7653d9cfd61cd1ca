import { writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../src/db/connect.js';
import { fingerprint } from '../src/secret.js';
import { describeEachDialect, freshDatabaseUrl } from './helpers/databases.js';
import { tschk } from './helpers/cli.js';
import { startMockFreeApi, type MockFreeApi } from './helpers/mock-free-api.js';

const LIVE = 'eyJhbGciOiJIUzI1NiJ9.live-token-1';
const DEAD = 'eyJhbGciOiJIUzI1NiJ9.dead-token-2';
const FLAKY = 'eyJhbGciOiJIUzI1NiJ9.flaky-token-3';

describeEachDialect('tschk command line', (dialect) => {
  let mock: MockFreeApi;
  let database: { url: string; drop: () => Promise<void> };
  let env: Record<string, string>;
  const outputs: string[] = [];
  const run = async (args: string[], stdin = '') => {
    const r = await tschk(args, env, stdin);
    outputs.push(r.stdout, r.stderr);
    return r;
  };

  beforeEach(async () => {
    mock = await startMockFreeApi({ behaviours: { [LIVE]: 'live', [DEAD]: 'dead', [FLAKY]: 'html_502' } });
    database = await freshDatabaseUrl(dialect);
    env = { TSCHK_DATABASE_URL: database.url, TSCHK_PRUNE: 'off', TSCHK_RETRIES: '0' };
    outputs.length = 0;
  });
  afterEach(async () => {
    await mock.close();
    await database.drop();
  });

  it('adds a provider, imports tokens, checks them and shows the result without a secret', async () => {
    expect(await run(['providers', 'add', 'deep', '--kind', 'free-api', '--url', mock.checkUrl])).toMatchObject({
      code: 0,
      stdout: 'provider deep (free-api) saved\n',
    });
    const imported = await run(['tokens', 'import', '--provider', 'deep', '-'], `\uFEFF${LIVE} \r\n\r\n${DEAD},${FLAKY}\r\n${LIVE}\n`);
    expect(imported).toMatchObject({ code: 0, stdout: 'imported 3 token(s) into deep/default; skipped 1 duplicate(s)\n' });

    const check = await run(['check']);
    expect(check.code).toBe(0);
    expect(check.stdout).toMatch(/^run \d+ done \(all\): 3 checked — 1 live, 1 dead, 0 exhausted, 1 unknown/);
    expect(check.stdout).toMatch(/deep\s+3\s+1\s+1\s+0\s+1/);

    const json = await run(['check', '--force', '--json', '--provider', 'deep']);
    expect(JSON.parse(json.stdout)).toMatchObject({ status: 'done', scope: 'deep', checked: 3, live: 1, dead: 1, unknown: 1 });

    const list = await run(['tokens', 'list', '--provider', 'deep']);
    expect(list.stdout).toContain('eyJh…en-1');
    expect(list.stdout).toMatch(/suspect\s+dead\s+upstream_rejected/);

    const suspects = await run(['tokens', 'list', '--state', 'suspect', '--json']);
    expect(JSON.parse(suspects.stdout)).toHaveLength(1);

    const history = await run(['history', '--limit', '4']);
    expect(history.stdout.trim().split('\n')).toHaveLength(5);
    expect(history.stdout).toContain('http_502');

    const status = await run(['status']);
    expect(status.stdout).toMatch(/deep\s+default\s+2\s+1\s+0\s+0/);
    expect(status.stdout).toMatch(/last run \d+: done/);

    for (const text of outputs) for (const secret of [LIVE, DEAD, FLAKY]) expect(text).not.toContain(secret);
  });

  it('refuses an import holding a line that cannot be a token, naming the line, and imports nothing of it', async () => {
    await run(['providers', 'add', 'deep', '--kind', 'free-api', '--url', mock.checkUrl]);
    const nul = await run(['tokens', 'import', '--provider', 'deep', '-'], `${LIVE}\n\nbad\u0000${DEAD}\n`);
    expect(nul).toMatchObject({ code: 2, stdout: '' });
    expect(nul.stderr).toBe(
      'tschk: tokens: line 3 of standard input holds a control character (a NUL, a tab, an escape sequence): nothing imported\n',
    );
    const long = await run(['tokens', 'import', '--provider', 'deep', '-'], `${LIVE}\n${'x'.repeat(5000)}\n${FLAKY}\tx\n`);
    expect(long.stderr).toBe(
      'tschk: tokens: line 2 of standard input is longer than 4096 characters; 1 more line(s) cannot be tokens either: nothing imported\n',
    );
    expect((await run(['tokens', 'export'])).stdout).toBe('');
    for (const text of outputs) for (const secret of [LIVE, DEAD, FLAKY]) expect(text).not.toContain(secret);
  });

  it('exports what it holds and archives what it removes', async () => {
    await run(['providers', 'add', 'deep', '--kind', 'free-api', '--url', mock.checkUrl]);
    await run(['tokens', 'import', '--provider', 'deep', '--pool', 'free'], `${LIVE}\n${DEAD}\n`);
    expect((await run(['tokens', 'export', '--provider', 'deep'])).stdout).toBe(`${LIVE}\n${DEAD}\n`);
    const [, id] = /^\s*(\d+)/m.exec((await run(['tokens', 'list', '--json'])).stdout.replace(/[\s\S]*?"id": /, '')) ?? [];
    expect((await run(['tokens', 'remove', '--id', id!])).stdout).toContain('removed 1 token(s)');
    expect((await run(['tokens', 'export'])).stdout).toBe(`${DEAD}\n`);
    expect((await run(['providers', 'remove', 'deep'])).stdout).toBe('provider deep removed; 1 token(s) archived\n');
    expect((await run(['providers', 'list'])).stdout).toContain('no providers');
  });

  it('writes its removal and restore of a token, and the removal of its provider, into the event log as the cli', async () => {
    await run(['providers', 'add', 'deep', '--kind', 'free-api', '--url', mock.checkUrl]);
    await run(['tokens', 'import', '--provider', 'deep'], `${LIVE}\n`);
    const fp = fingerprint(LIVE);
    expect((await run(['tokens', 'remove', '--fingerprint', fp])).code).toBe(0);
    expect((await run(['tokens', 'restore', fp])).stdout).toMatch(/^restored .* into deep\/default\n$/);
    expect((await run(['providers', 'remove', 'deep'])).code).toBe(0);

    const db = openDatabase(database.url);
    try {
      // The README's "why did this token go away" query.
      const { rows } = await sql<{ event: string; reason: string; run_id: unknown; actor: string }>`
        SELECT at, event, reason, run_id, actor FROM token_events WHERE fingerprint = ${fp} ORDER BY id`.execute(db.kysely);
      expect(rows.map((r) => [r.event, r.reason, r.run_id, r.actor])).toEqual([
        ['removed', 'user_removed', null, 'cli'],
        ['restored', 'archived as user_removed', null, 'cli'],
        ['removed', 'provider_removed', null, 'cli'],
      ]);
    } finally {
      await db.close();
    }
  });
});

describe('tschk usage errors', () => {
  let database: { url: string; drop: () => Promise<void> };
  beforeEach(async () => {
    database = await freshDatabaseUrl('sqlite');
  });
  afterEach(async () => {
    await database.drop();
  });

  it.each([
    [['frobnicate'], "tschk: unknown command 'frobnicate'; run tschk --help"],
    [['check', '--provider', 'nope'], "tschk: check: unknown provider 'nope'"],
    [['check', '--bogus'], "tschk: check: Unknown option '--bogus'"],
    [['providers', 'add', 'x', '--kind', 'carrier-pigeon'], 'tschk: providers: --kind must be one of'],
    [['providers', 'add', 'x', '--kind', 'free-api'], 'tschk: providers: --url is required for kind free-api'],
    [['tokens', 'import'], 'tschk: tokens: --provider is required'],
    [['tokens', 'list', '--state', 'zombie'], "tschk: tokens: --state must be one of active, suspect, invalid, disabled; got 'zombie'"],
    [['history', '--limit', 'many'], 'tschk: history: --limit must be a whole number'],
    [['serve', '--port', '8080'], "tschk: serve: Unknown option '--port'"],
    [['serve', 'now'], "tschk: serve: unexpected argument 'now'"],
    [['migrate', '--dry-run'], "tschk: migrate: Unknown option '--dry-run'"],
    [['tokens', 'remove', '--id', 'abc'], "tschk: tokens: --id must be a whole number; got 'abc'"],
    [
      ['providers', 'add', 'x', '--kind', 'free-api', '--url', `http://x/${'a'.repeat(1020)}`],
      'tschk: providers: --url must be at most 1024 characters',
    ],
    [
      ['tokens', 'import', '--provider', 'x', '--pool', 'a b'],
      "tschk: tokens: --pool must be letters, digits, - and _, at most 64; got 'a b'",
    ],
    [
      ['tokens', 'import', '--provider', 'x', '--pool', 'p'.repeat(65)],
      'tschk: tokens: --pool must be letters, digits, - and _, at most 64',
    ],
    [['tokens', 'import', '--provider', 'x', '--label', 'L'.repeat(256)], 'tschk: tokens: --label must be at most 255 characters'],
  ])('%j → exit 2 and one line', async (args, message) => {
    const r = await tschk(args, { TSCHK_DATABASE_URL: database.url });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('will not remove a provider the environment declares: it would come back at the next start', async () => {
    const env = { TSCHK_DATABASE_URL: database.url, TokenStatuCheckUrls__DeepTokenCheckUrl: 'http://127.0.0.1:1/token/check' };
    expect((await tschk(['providers', 'list'], env)).stdout).toMatch(/^deep\s+free-api\s+http:\/\/127\.0\.0\.1:1\/token\/check/m);
    const r = await tschk(['providers', 'remove', 'deep'], env);
    expect(r).toMatchObject({
      code: 2,
      stderr:
        "tschk: providers: provider 'deep' is declared by TokenStatuCheckUrls__DeepTokenCheckUrl; unset it first, or it comes back at the next start\n",
    });
  });

  it('refuses a bad variable before doing anything', async () => {
    const r = await tschk(['check'], { TSCHK_DATABASE_URL: database.url, TSCHK_TIMEOUT_MS: 'forever' });
    expect(r).toMatchObject({ code: 2, stderr: "tschk: TSCHK_TIMEOUT_MS: expected a whole number from 100 to 600000, got 'forever'\n" });
  });

  it.each(['postgres://nobody:S3cretPw@127.0.0.1:1/none', 'mysql://nobody:S3cretPw@127.0.0.1:1/none'])(
    'exits 1 with one line naming the variable when %s cannot be reached',
    async (url) => {
      const r = await tschk(['status'], { TSCHK_DATABASE_URL: url });
      expect(r).toMatchObject({
        code: 1,
        stderr: 'tschk: cannot use the database (TSCHK_DATABASE_URL): connect ECONNREFUSED 127.0.0.1:1\n',
      });
    },
  );

  it('reads tokens from a file and says so when it cannot', async () => {
    const file = join(dirname(database.url.slice('sqlite:'.length)), 'tokens.txt');
    writeFileSync(file, 'tok-from-file-aaaaaa\n');
    const env = { TSCHK_DATABASE_URL: database.url };
    await tschk(['providers', 'add', 'glm', '--kind', 'free-api', '--url', 'http://127.0.0.1:1/token/check'], env);
    expect((await tschk(['tokens', 'import', '--provider', 'glm', file], env)).stdout).toContain('imported 1 token(s)');
    expect(await tschk(['tokens', 'import', '--provider', 'glm', file + '.missing'], env)).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('ENOENT'),
    });
  });

  it('keeps an account line whole even when its password holds a comma', async () => {
    const env = { TSCHK_DATABASE_URL: database.url };
    await tschk(['providers', 'add', 'ds-users', '--kind', 'deepseek-account'], env);
    const r = await tschk(['tokens', 'import', '--provider', 'ds-users', '-'], env, '13800138000-pa,ss\nme@example.com-x,y,z\n');
    expect(r.stdout).toBe('imported 2 token(s) into ds-users/default; skipped 0 duplicate(s)\n');
    expect((await tschk(['tokens', 'export', '--provider', 'ds-users'], env)).stdout).toBe('13800138000-pa,ss\nme@example.com-x,y,z\n');
    expect((await tschk(['tokens', 'list'], env)).stdout).not.toMatch(/pa,ss|x,y,z/);
  });

  it('lists a provider whose URL holds a password without it, as the API does', async () => {
    const env = { TSCHK_DATABASE_URL: database.url };
    await tschk(['providers', 'add', 'relay', '--kind', 'openai-compatible', '--url', 'https://relay:Pw9sEcret@relay.example'], env);
    for (const args of [
      ['providers', 'list'],
      ['providers', 'list', '--json'],
    ]) {
      const r = await tschk(args, env);
      expect(r.stdout).toContain('https://relay:***@relay.example');
      expect(r.stdout).not.toContain('Pw9sEcret');
    }
  });

  it.each(['serve', 'check', 'migrate', 'providers', 'tokens', 'history', 'status'])('%s --help explains itself', async (cmd) => {
    const r = await tschk([cmd, '--help'], {});
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: tschk /);
  });
});
