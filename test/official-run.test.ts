import { sql } from 'kysely';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { upsertProvider } from '../src/db/providers.js';
import { importTokens, listTokens } from '../src/db/tokens.js';
import { mask } from '../src/secret.js';
import { describeEachDialect, freshDatabaseUrl, type Dialect } from './helpers/databases.js';
import { testDaemon } from './helpers/daemon.js';
import { answers, PATHS, startMockOfficial, type MockOfficial } from './helpers/mock-official.js';

/** The README's "balance of every key over time" query, per dialect (last 30 days). */
const BALANCE_HISTORY_SQL: Record<Dialect, string> = {
  postgres: `SELECT p.name AS provider, s.fingerprint, t.label, s.checked_at, s.verdict, s.balance, s.currency
FROM token_status s
JOIN providers p ON p.id = s.provider_id
LEFT JOIN tokens t ON t.id = s.token_id
WHERE s.balance IS NOT NULL AND s.checked_at > now() - interval '30 days'
ORDER BY p.name, s.fingerprint, s.checked_at`,
  mysql: `SELECT p.name AS provider, s.fingerprint, t.label, s.checked_at, s.verdict, s.balance, s.currency
FROM token_status s
JOIN providers p ON p.id = s.provider_id
LEFT JOIN tokens t ON t.id = s.token_id
WHERE s.balance IS NOT NULL AND s.checked_at > UTC_TIMESTAMP() - INTERVAL 30 DAY
ORDER BY p.name, s.fingerprint, s.checked_at`,
  sqlite: `SELECT p.name AS provider, s.fingerprint, t.label, s.checked_at, s.verdict, s.balance, s.currency
FROM token_status s
JOIN providers p ON p.id = s.provider_id
LEFT JOIN tokens t ON t.id = s.token_id
WHERE s.balance IS NOT NULL AND s.checked_at > strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-30 days')
ORDER BY p.name, s.fingerprint, s.checked_at`,
};

describeEachDialect('a run over official keys and DeepSeek accounts', (dialect) => {
  let mock: MockOfficial;
  let database: { url: string; drop: () => Promise<void> };
  let ctx: Awaited<ReturnType<typeof testDaemon>>;

  beforeEach(async () => {
    mock = await startMockOfficial();
    database = await freshDatabaseUrl(dialect);
  });
  afterEach(async () => {
    await ctx?.daemon.stop();
    await mock.close();
    await database.drop();
  });

  it('stores balances and currencies, lists low balances, exports balance gauges, and the balance history reads back with one query', async () => {
    ctx = await testDaemon(database.url, { TSCHK_RETRIES: '0', TSCHK_LOW_BALANCE: 'CNY:5,USD:1,tokens:1000000' });
    const { db, daemon, log } = ctx;
    const keys = {
      rich: 'sk-deepseek-rich-0000000000000001',
      low: 'sk-deepseek-low-00000000000000002',
      empty: 'sk-deepseek-empty-000000000000003',
      revoked: 'sk-deepseek-revoked-0000000000004',
      kimi: 'sk-kimi-000000000000000000000005',
      router: 'sk-or-v1-00000000000000000000006',
    };
    const user = {
      rich: `1380000${dialect.length}001-pw-rich`,
      poor: `1380000${dialect.length}002-pw-poor`,
      wrong: `1380000${dialect.length}003-not-it`,
    };
    mock.setKey(
      PATHS.deepseek,
      keys.rich,
      answers.deepseekBalance(true, [
        { currency: 'USD', total: '2.00' },
        { currency: 'CNY', total: '110.00' },
      ]),
    );
    mock.setKey(PATHS.deepseek, keys.low, answers.deepseekBalance(true, [{ currency: 'CNY', total: '3.20' }]));
    mock.setKey(PATHS.deepseek, keys.empty, answers.deepseekBalance(false, [{ currency: 'CNY', total: '0.00' }]));
    mock.setKey(PATHS.moonshot, keys.kimi, answers.moonshotBalance(49.58));
    mock.setKey(PATHS.openrouter, keys.router, answers.openrouterKey(0.5));
    mock.addAccount(user.rich.split('-')[0]!, { password: 'pw-rich', estimation: '4722170' });
    mock.addAccount(user.poor.split('-')[0]!, { password: 'pw-poor', estimation: '500000' });
    mock.addAccount(user.wrong.split('-')[0]!, { password: 'something-else', estimation: '1' });

    const add = async (name: string, kind: string, checkUrl: string, entries: string[]) => {
      const p = await upsertProvider(db, { name, kind, checkUrl });
      await importTokens(db, { providerId: p.id, pool: 'default', entries, source: 'cli' });
    };
    await add('ds-keys', 'deepseek-key', mock.baseUrl, [keys.rich, keys.low, keys.empty, keys.revoked]);
    await add('ds-accounts', 'deepseek-account', mock.baseUrl, [user.rich, user.poor, user.wrong]);
    await add('kimi', 'moonshot-key', mock.baseUrl, [keys.kimi]);
    await add('router', 'openrouter-key', `${mock.baseUrl}/api`, [keys.router]);

    const first = await daemon.runNow({ trigger: 'cli' });

    expect(first).toMatchObject({ status: 'done', checked: 9, live: 6, dead: 2, exhausted: 1, unknown: 0 });
    const stored = Object.fromEntries((await listTokens(db, {})).map((t) => [t.secret, [t.last_verdict, t.balance, t.currency]]));
    expect(stored).toEqual({
      [keys.rich]: ['live', '110.00', 'CNY'],
      [keys.low]: ['live', '3.20', 'CNY'],
      [keys.empty]: ['exhausted', '0.00', 'CNY'],
      [keys.revoked]: ['dead', null, null],
      [user.rich]: ['live', '4722170', 'tokens'],
      [user.poor]: ['live', '500000', 'tokens'],
      [user.wrong]: ['dead', null, null],
      [keys.kimi]: ['live', '49.58', 'CNY'],
      [keys.router]: ['live', '0.5', 'USD'],
    });
    const low = Object.fromEntries(first.providers.map((p) => [p.provider, p.lowBalance.map((k) => [k.mask, k.balance, k.currency])]));
    expect(low).toEqual({
      'ds-keys': expect.arrayContaining([
        [mask(keys.low), '3.20', 'CNY'],
        [mask(keys.empty), '0.00', 'CNY'],
      ]),
      'ds-accounts': [[mask(user.poor), '500000', 'tokens']],
      kimi: [],
      router: [[mask(keys.router), '0.5', 'USD']],
    });
    expect(low['ds-keys']).toHaveLength(2);
    const warnings = log.entries().filter((e) => e.msg === 'balance below TSCHK_LOW_BALANCE');
    expect(warnings.map((w) => w.provider).sort()).toEqual(['ds-accounts', 'ds-keys', 'router']);

    mock.setKey(PATHS.deepseek, keys.rich, answers.deepseekBalance(true, [{ currency: 'CNY', total: '100.00' }]));
    mock.addAccount(user.rich.split('-')[0]!, { password: 'pw-rich', estimation: '4000000' });
    await daemon.runNow({ trigger: 'cli', force: true });

    const { rows } = await sql
      .raw<{ provider: string; fingerprint: string; balance: string; currency: string }>(BALANCE_HISTORY_SQL[dialect])
      .execute(db.kysely);
    const fingerprints = new Map((await listTokens(db, {})).map((t) => [t.secret, t.fingerprint]));
    const history = (secret: string) =>
      rows.filter((r) => r.fingerprint === fingerprints.get(secret)).map((r) => `${r.balance} ${r.currency}`);
    expect(history(keys.rich)).toEqual(['110.00 CNY', '100.00 CNY']);
    expect(history(user.rich)).toEqual(['4722170 tokens', '4000000 tokens']);
    expect(history(keys.revoked)).toEqual([]);
    expect(new Set(rows.map((r) => r.provider))).toEqual(new Set(['ds-accounts', 'ds-keys', 'kimi', 'router']));

    const { text: metrics } = await daemon.context.metrics.render();
    const series = (name: string) =>
      metrics
        .split('\n')
        .filter((l) => l.startsWith(`${name}{`))
        .sort();
    expect(series('tschk_balance')).toEqual([
      'tschk_balance{provider="ds-accounts",currency="tokens"} 4500000',
      'tschk_balance{provider="ds-keys",currency="CNY"} 103.2',
      'tschk_balance{provider="kimi",currency="CNY"} 49.58',
      'tschk_balance{provider="router",currency="USD"} 0.5',
    ]);
    expect(series('tschk_low_balance_keys')).toEqual([
      'tschk_low_balance_keys{provider="ds-accounts"} 1',
      'tschk_low_balance_keys{provider="ds-keys"} 2',
      'tschk_low_balance_keys{provider="kimi"} 0',
      'tschk_low_balance_keys{provider="router"} 1',
    ]);

    // Only the session cache: the second run logged no account in again.
    expect(
      mock
        .logins()
        .map((l) => l.mobile)
        .filter((m) => m === user.rich.split('-')[0]),
    ).toHaveLength(1);
    for (const secret of [...Object.values(keys), ...Object.values(user), 'pw-rich', 'pw-poor']) expect(log.text).not.toContain(secret);
  });
});
