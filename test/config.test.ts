import { describe, expect, it } from 'vitest';
import { adoNetToMysqlUrl, ConfigError, loadConfig } from '../src/config.js';

const errorOf = (env: Record<string, string>) => {
  try {
    loadConfig(env);
  } catch (err) {
    return err;
  }
  return undefined;
};

describe('loadConfig', () => {
  it('has the documented defaults', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      database: { dialect: 'sqlite', location: './data/tschk.db' },
      cron: '0 * * * *',
      runOnStart: true,
      concurrency: 32,
      providerConcurrency: 4,
      timeoutMs: 40_000,
      retries: 2,
      minIntervalS: 600,
      historyDays: 90,
      historyFlushMs: 1_000,
      rollupDays: 400,
      http: { port: 3000, apiToken: undefined, metricsPublic: false },
      prune: { mode: 'flag', after: 2, maxRatio: 0.5, exhausted: false, recover: true },
      oneApi: undefined,
      legacyProviders: [],
    });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it("maps the original's variables verbatim", () => {
    const c = loadConfig({
      UserAuthorization: 'sk-shared',
      TokenStatuCheckUrls__DeepTokenCheckUrl: 'http://deepseek-free-api:8000/token/check',
      TokenStatuCheckUrls__MitaTokenCheckUrl: 'http://metaso:8000/token/check',
      ConnectionStrings__TS_Database: 'server=mysql;port=3307;database=one-api;userid=root;password=p@ss;w',
    });
    expect(c.http.apiToken).toBe('sk-shared');
    expect(c.legacyProviders).toEqual([
      {
        name: 'deep',
        folder: 'LLM-Deep',
        variable: 'TokenStatuCheckUrls__DeepTokenCheckUrl',
        checkUrl: 'http://deepseek-free-api:8000/token/check',
      },
      { name: 'mita', folder: 'LLM-Mita', variable: 'TokenStatuCheckUrls__MitaTokenCheckUrl', checkUrl: 'http://metaso:8000/token/check' },
    ]);
    expect(c.oneApi?.database).toMatchObject({ dialect: 'mysql', url: 'mysql://root:p%40ss@mysql:3307/one-api' });
  });

  it('prefers TSCHK_API_TOKEN over UserAuthorization', () => {
    expect(loadConfig({ UserAuthorization: 'a', TSCHK_API_TOKEN: 'b' }).http.apiToken).toBe('b');
  });

  it.each([
    ['postgres://u:p@db:5432/tschk', 'postgres'],
    ['postgresql://db/tschk', 'postgres'],
    ['mysql://u:p@db/tschk', 'mysql'],
    ['mariadb://u:p@db/tschk', 'mysql'],
    ['sqlite::memory:', 'sqlite'],
    ['sqlite:///var/lib/tschk.db', 'sqlite'],
  ])('accepts %s', (url, dialect) => {
    expect(loadConfig({ TSCHK_DATABASE_URL: url }).database.dialect).toBe(dialect);
  });

  it.each([
    [{ TSCHK_CONCURRENCY: 'lots' }, "TSCHK_CONCURRENCY: expected a whole number from 1 to 10000, got 'lots'"],
    [{ TSCHK_CONCURRENCY: '0' }, "TSCHK_CONCURRENCY: expected a whole number from 1 to 10000, got '0'"],
    [{ TSCHK_HTTP_PORT: '70000' }, 'TSCHK_HTTP_PORT: expected a whole number from 0 to 65535'],
    [{ TSCHK_CRON: 'every hour' }, "TSCHK_CRON: expected a cron expression such as '0 * * * *', got 'every hour'"],
    [{ TSCHK_TIMEZONE: 'Mars/Olympus' }, 'TSCHK_TIMEZONE: expected an IANA time zone'],
    [{ TSCHK_RUN_ON_START: 'maybe' }, "TSCHK_RUN_ON_START: expected true or false, got 'maybe'"],
    [{ TSCHK_PRUNE: 'nuke' }, "TSCHK_PRUNE: expected one of off, flag, delete, got 'nuke'"],
    [{ TSCHK_PRUNE_MAX_RATIO: '1.5' }, 'TSCHK_PRUNE_MAX_RATIO: expected a number from 0 to 1'],
    [{ TSCHK_DATABASE_URL: 'oracle://db' }, 'TSCHK_DATABASE_URL: unsupported database URL; accepted: sqlite:PATH'],
    [
      { TokenStatuCheckUrls__QwenTokenCheckUrl: 'qwen:8000/token/check' },
      'TokenStatuCheckUrls__QwenTokenCheckUrl: expected an http(s) URL',
    ],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL: expected one of fatal, error, warn, info, debug, trace, silent'],
    [{ TSCHK_LOW_BALANCE: 'CNY5' }, 'TSCHK_LOW_BALANCE: expected CURRENCY:AMOUNT'],
    [{ TSCHK_ONEAPI_CHANNELS: 'deep=1' }, 'TSCHK_ONEAPI_CHANNELS: expected provider:id,id;provider:id'],
    [{ TSCHK_WEBHOOK_FORMAT: 'slack' }, 'TSCHK_WEBHOOK_FORMAT: expected one of json, wecom, dingtalk, feishu, telegram'],
    [{ ConnectionStrings__TS_Database: 'Data Source=x' }, 'ConnectionStrings__TS_Database: expected the ADO.NET form'],
  ])('rejects %o with one line naming the variable', (env, message) => {
    const err = errorOf(env);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain(message);
    expect((err as Error).message).not.toContain('\n');
  });

  it('parses the lists of the notification and balance settings', () => {
    const c = loadConfig({
      TSCHK_LOW_BALANCE: 'cny:5, USD:1.5',
      TSCHK_ONEAPI_DATABASE_URL: 'sqlite:/data/one-api.db',
      TSCHK_ONEAPI_CHANNELS: 'deep:12,13; qwen:20',
      TSCHK_UPTIME_KUMA_PUSH: 'deep=https://kuma.example/api/push/A;qwen/free=https://kuma.example/api/push/B',
      TSCHK_WEBHOOK_URL: 'https://a.example/hook, https://b.example/hook',
    });
    expect([...c.lowBalance]).toEqual([
      ['CNY', 5],
      ['USD', 1.5],
    ]);
    expect([...c.oneApi!.channels]).toEqual([
      ['deep', [12, 13]],
      ['qwen', [20]],
    ]);
    expect(c.notify.uptimeKuma).toEqual([
      { provider: 'deep', pool: undefined, url: 'https://kuma.example/api/push/A' },
      { provider: 'qwen', pool: 'free', url: 'https://kuma.example/api/push/B' },
    ]);
    expect(c.notify.webhookUrls).toEqual(['https://a.example/hook', 'https://b.example/hook']);
    expect(loadConfig({ TSCHK_UPTIME_KUMA_PUSH: 'https://kuma.example/api/push/X?status=up' }).notify.uptimeKuma).toEqual([
      { provider: undefined, pool: undefined, url: 'https://kuma.example/api/push/X?status=up' },
    ]);
  });
});

describe('a bad URL that can hold a key', () => {
  it.each([
    [
      { TSCHK_WEBHOOK_URL: 'qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7fa1-4bc4-97a0' },
      "TSCHK_WEBHOOK_URL: expected an http(s) URL, got 'qyapi.weixin.qq.com/…'",
      '693a91f6',
    ],
    [
      { TSCHK_WEBHOOK_URL: 'https://a.example/hook, ftp://bot:Pw9sEcret@api.telegram.org/bot123456:ABCdefGhIJ/sendMessage' },
      "got 'ftp://api.telegram.org/…'",
      'ABCdefGhIJ',
    ],
    [
      { TSCHK_UPTIME_KUMA_PUSH: 'kuma.example/api/push/Xk3pPushTok' },
      "TSCHK_UPTIME_KUMA_PUSH: expected an http(s) URL, got 'kuma.example/…'",
      'Xk3pPushTok',
    ],
    [{ TSCHK_UPTIME_KUMA_PUSH: 'deep=kuma.example/api/push/Xk3pPushTok' }, "got 'kuma.example/…'", 'Xk3pPushTok'],
    [
      { TSCHK_UPTIME_KUMA_PUSH: 'deep:https://kuma.example/api/push/Xk3pPushTok=1' },
      'expected a push URL or provider[/pool]=URL;…',
      'Xk3pPushTok',
    ],
  ])('%o: the error names the variable and shows only the host', (env, message, key) => {
    const err = errorOf(env) as Error;
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toContain(message);
    expect(err.message).not.toContain(key);
    expect(err.message).not.toContain('Pw9sEcret');
  });
});

describe('adoNetToMysqlUrl', () => {
  it.each([
    ['server=db;port=3306;database=one-api;userid=root;password=secret;', 'mysql://root:secret@db:3306/one-api'],
    ['Server=db;Database=oneapi;Uid=u;Pwd=p', 'mysql://u:p@db:3306/oneapi'],
    ['server=db;database=oneapi;', 'mysql://db:3306/oneapi'],
  ])('%s → %s', (raw, url) => {
    expect(adoNetToMysqlUrl(raw)).toBe(url);
  });
});
