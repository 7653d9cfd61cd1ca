import { afterEach, beforeEach, expect, it } from 'vitest';
import { describeEachDialect, freshDatabaseUrl } from './helpers/databases.js';
import { tschk } from './helpers/cli.js';
import { answers, PATHS, startMockOfficial, type MockOfficial } from './helpers/mock-official.js';

describeEachDialect('tschk providers add for the official kinds', (dialect) => {
  let mock: MockOfficial;
  let database: { url: string; drop: () => Promise<void> };
  let env: Record<string, string>;

  beforeEach(async () => {
    mock = await startMockOfficial();
    database = await freshDatabaseUrl(dialect);
    env = { TSCHK_DATABASE_URL: database.url, LOG_LEVEL: 'silent' };
  });
  afterEach(async () => {
    await mock.close();
    await database.drop();
  });

  it('adds each kind, with the default base or a --url override, and checks a key end to end', async () => {
    for (const kind of ['deepseek-key', 'deepseek-account', 'moonshot-key', 'stepfun-key', 'openrouter-key']) {
      expect(await tschk(['providers', 'add', `p-${kind}`, '--kind', kind], env)).toMatchObject({ code: 0 });
    }
    const missing = await tschk(['providers', 'add', 'compat', '--kind', 'openai-compatible'], env);
    expect(missing).toMatchObject({ code: 2, stderr: expect.stringContaining('--url is required for kind openai-compatible') });
    expect(await tschk(['providers', 'add', 'compat', '--kind', 'openai-compatible', '--url', mock.baseUrl], env)).toMatchObject({
      code: 0,
    });
    expect(await tschk(['providers', 'add', 'ds', '--kind', 'deepseek-key', '--url', mock.baseUrl], env)).toMatchObject({ code: 0 });

    const list = JSON.parse((await tschk(['providers', 'list', '--json'], env)).stdout) as Array<{
      name: string;
      kind: string;
      check_url: string | null;
    }>;
    expect(list.map((p) => [p.name, p.kind, p.check_url])).toEqual([
      ['compat', 'openai-compatible', mock.baseUrl],
      ['ds', 'deepseek-key', mock.baseUrl],
      ['p-deepseek-account', 'deepseek-account', null],
      ['p-deepseek-key', 'deepseek-key', null],
      ['p-moonshot-key', 'moonshot-key', null],
      ['p-openrouter-key', 'openrouter-key', null],
      ['p-stepfun-key', 'stepfun-key', null],
    ]);

    const key = 'sk-cli-0000000000000000000000000001';
    mock.setKey(PATHS.deepseek, key, answers.deepseekBalance(true, [{ currency: 'CNY', total: '42.00' }]));
    expect(await tschk(['tokens', 'import', '--provider', 'ds', '-'], env, `${key}\n`)).toMatchObject({ code: 0 });
    const run = await tschk(['check', '--provider', 'ds', '--json'], env);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ checked: 1, live: 1 });
    const tokens = JSON.parse((await tschk(['tokens', 'list', '--provider', 'ds', '--json'], env)).stdout) as Array<
      Record<string, unknown>
    >;
    expect(tokens).toEqual([expect.objectContaining({ last_verdict: 'live', balance: '42.00', currency: 'CNY' })]);
    expect(JSON.stringify(tokens)).not.toContain(key);
  });
});
