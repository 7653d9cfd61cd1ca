import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { upsertProvider } from '../src/db/providers.js';
import { importTokens } from '../src/db/tokens.js';
import { accountSlot, keylistAnswer, keySlot } from '../src/http/official.js';
import { fingerprint, mask } from '../src/secret.js';
import { describeEachDialect, freshDatabaseUrl } from './helpers/databases.js';
import { API_SECRET, servedDaemon, type Served } from './helpers/http.js';
import { answers, PATHS, startMockOfficial, ugly, type MockOfficial } from './helpers/mock-official.js';

describe('the DeepSeek legacy slots', () => {
  it.each([
    ['live', '4722170', '4722170', '4722170-true'],
    ['exhausted', '0', '0', '0-false'],
    ['exhausted', '0.00', '0.00', '0.00-false'],
    ['exhausted', null, 'unknown', '0-false'],
    ['dead', null, 'invalid', 'invalid'],
    ['unknown', null, 'unknown', 'unknown'],
  ] as const)('%s with balance %s', (verdict, balance, account, key) => {
    expect(accountSlot({ verdict, balance })).toBe(account);
    expect(keySlot({ verdict, balance })).toBe(key);
  });

  it('masks keys unless told to reveal them, and keeps two keys with one mask apart', () => {
    const a = 'sk-aaaa-1111111111111111-zzzz';
    const b = 'sk-aaaa-2222222222222222-zzzz';
    const live = { verdict: 'live', balance: '1.00' } as const;
    expect(
      keylistAnswer(
        [
          { secret: a, result: live },
          { secret: b, result: live },
        ],
        false,
      ),
    ).toEqual({
      [mask(a)]: '1.00-true',
      [`${mask(b)} (${fingerprint(b)})`]: '1.00-true',
    });
    expect(keylistAnswer([{ secret: a, result: live }], true)).toEqual({ [a]: '1.00-true' });
  });
});

describeEachDialect('the DeepSeek legacy routes', (dialect) => {
  let mock: MockOfficial;
  let database: { url: string; drop: () => Promise<void> };
  let served: Served;
  const serve = async (env: Record<string, string> = {}) => {
    served = await servedDaemon(database.url, { TSCHK_DEEPSEEK_PLATFORM_URL: mock.baseUrl, TSCHK_TIMEOUT_MS: '500', ...env });
    return served;
  };

  beforeEach(async () => {
    mock = await startMockOfficial();
    database = await freshDatabaseUrl(dialect);
  });
  afterEach(async () => {
    await served?.daemon.stop();
    await mock.close();
    await database.drop();
  });

  describe('GET /api/OfficialTokenCheck/Check/deep/single', () => {
    const path = '/api/OfficialTokenCheck/Check/deep/single';

    it("forwards the caller's own user token and answers the platform's JSON as it came", async () => {
      const { call } = await serve();
      mock.addAccount('13900000001', { password: 'pw', estimation: '4722170' });
      const userToken = mock.issueSession('13900000001');
      const direct = await fetch(mock.baseUrl + PATHS.summary, { headers: { authorization: `Bearer ${userToken}` } }).then((r) => r.text());

      const res = await call('GET', path, { auth: userToken });

      expect(res.status).toBe(200);
      expect(res.text).toBe(direct);
      expect(res.json()).toMatchObject({
        code: 0,
        data: { biz_data: { total_available_token_estimation: '4722170', normal_wallets: [expect.any(Object)] } },
      });
      expect(mock.calls.at(-1)).toMatchObject({ path: PATHS.summary, authorization: `Bearer ${userToken}` });
      expect(mock.calls.some((c) => c.authorization?.includes(API_SECRET))).toBe(false);
    });

    it("passes the platform's refusal of an expired user token through", async () => {
      const { call } = await serve();
      const res = await call('GET', path, { auth: 'an-expired-user-token' });
      expect(res.status).toBe(200);
      expect(res.json()).toEqual({ code: 40003, msg: 'Authorization Failed (invalid token)', data: null });
    });

    it('401 without a bearer, and nothing is sent upstream', async () => {
      const { call } = await serve();
      const res = await call('GET', path, { auth: null });
      expect(res.status).toBe(401);
      expect(res.json()).toMatchObject({ error: { code: 'unauthorized' } });
      expect(mock.calls).toHaveLength(0);
    });

    it('a platform that does not answer is a 502 naming the variable', async () => {
      const { call } = await serve({ TSCHK_DEEPSEEK_PLATFORM_URL: 'http://127.0.0.1:9' });
      const res = await call('GET', path, { auth: 'some-user-token' });
      expect(res.status).toBe(502);
      expect(res.json().error.message).toContain('TSCHK_DEEPSEEK_PLATFORM_URL');
    });
  });

  describe('GET /api/OfficialTokenCheck/Check/deep/list', () => {
    const path = '/api/OfficialTokenCheck/Check/deep/list';

    it('answers each account in order: its token estimation, invalid or unknown', async () => {
      const { call, db, log } = await serve();
      mock.addAccount('13900000011', { password: 'pw-a', estimation: '5000000' });
      mock.addAccount('ops@example.com', { password: 'pw-b', estimation: '4722170', legacyShape: true });
      mock.addAccount('13900000013', { password: 'right', estimation: '1' });
      mock.addAccount('13900000014', { password: 'pw-d', estimation: '1', login: ugly.rateLimited(30) });
      mock.addAccount('13900000015', { password: 'pw-e', estimation: '0' });
      const p = await upsertProvider(db, { name: 'ds-accounts', kind: 'deepseek-account', checkUrl: mock.baseUrl });
      const lines = ['13900000011-pw-a', 'ops@example.com-pw-b', '13900000013-wrong', '13900000014-pw-d', '13900000015-pw-e'];
      await importTokens(db, { providerId: p.id, pool: 'default', entries: lines, source: 'cli' });

      const res = await call('GET', path);

      expect(res.status).toBe(200);
      expect(res.text).toBe('["5000000","4722170","invalid","unknown","0"]');
      for (const secret of [...lines, 'pw-a', 'pw-b']) {
        expect(res.text).not.toContain(secret);
        expect(log.text).not.toContain(secret);
      }
    });

    it('an empty array when there is no account', async () => {
      const { call } = await serve();
      const res = await call('GET', path);
      expect([res.status, res.text]).toEqual([200, '[]']);
    });

    it('401 without UserAuthorization', async () => {
      const { call } = await serve();
      expect((await call('GET', path, { auth: null })).status).toBe(401);
      expect((await call('GET', path, { auth: 'not-the-secret' })).status).toBe(401);
    });
  });

  describe('GET /api/OfficialTokenCheck/Check/deep/keylist', () => {
    const path = '/api/OfficialTokenCheck/Check/deep/keylist';
    const keys = {
      rich: 'sk-8f3a00000000000000000000000091c2',
      empty: 'sk-7b1e00000000000000000000000044d0',
      revoked: 'sk-0c9d000000000000000000000000aa17',
      busy: 'sk-55e1000000000000000000000000b3f9',
    };
    const setUp = async (s: Served) => {
      mock.setKey(
        PATHS.deepseek,
        keys.rich,
        answers.deepseekBalance(true, [
          { currency: 'USD', total: '3.00' },
          { currency: 'CNY', total: '10.00' },
        ]),
      );
      mock.setKey(PATHS.deepseek, keys.empty, answers.deepseekBalance(false, [{ currency: 'CNY', total: '0.00' }]));
      mock.setKey(PATHS.deepseek, keys.busy, ugly.http503);
      const p = await upsertProvider(s.db, { name: 'ds-keys', kind: 'deepseek-key', checkUrl: mock.baseUrl });
      await importTokens(s.db, { providerId: p.id, pool: 'default', entries: Object.values(keys), source: 'cli' });
    };

    it('answers "<CNY total_balance>-<is_available>" per masked key, in order', async () => {
      const s = await serve();
      await setUp(s);

      const res = await s.call('GET', path);

      expect(res.status).toBe(200);
      expect(Object.entries(res.json())).toEqual([
        [mask(keys.rich), '10.00-true'],
        [mask(keys.empty), '0.00-false'],
        [mask(keys.revoked), 'invalid'],
        [mask(keys.busy), 'unknown'],
      ]);
      for (const key of Object.values(keys)) {
        expect(res.text).not.toContain(key);
        expect(s.log.text).not.toContain(key);
      }
    });

    it('shows the full keys with TSCHK_LEGACY_REVEAL_KEYS=true', async () => {
      const s = await serve({ TSCHK_LEGACY_REVEAL_KEYS: 'true' });
      await setUp(s);
      const res = await s.call('GET', path);
      expect(Object.keys(res.json())).toEqual(Object.values(keys));
    });

    it('401 without UserAuthorization, and no key is checked', async () => {
      const s = await serve();
      await setUp(s);
      expect((await s.call('GET', path, { auth: null })).status).toBe(401);
      expect(mock.calls).toHaveLength(0);
    });
  });
  describe('fed from the OfficialToken files when TSCHK_LEGACY_DATA_DIR is set', () => {
    let dir: string;
    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), 'tschk-official-'));
      mkdirSync(join(dir, 'OfficialToken'));
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it('answers in file line order, follows edits without a restart, and ignores other providers', async () => {
      const keyA = 'sk-file-a-000000000000000000000001';
      const keyB = 'sk-file-b-000000000000000000000002';
      mock.setKey(PATHS.deepseek, keyA, answers.deepseekBalance(true, [{ currency: 'CNY', total: '7.00' }]));
      mock.setKey(PATHS.deepseek, keyB, answers.deepseekBalance(true, [{ currency: 'USD', total: '1.25' }]));
      mock.addAccount('13900000021', { password: 'pw-1', estimation: '5000000' });
      mock.addAccount('13900000022', { password: 'pw-2', estimation: '4722170' });
      const users = join(dir, 'OfficialToken', 'deep_user.json');
      const keysFile = join(dir, 'OfficialToken', 'deep_key.json');
      // The original wanted no blank lines and no trailing spaces; tschk takes them, a BOM and CRLF too.
      writeFileSync(users, '\uFEFF13900000022-pw-2\r\n\r\n13900000021-pw-1  \r\n');
      writeFileSync(keysFile, `${keyB}\n${keyA}\n`);
      const s = await serve({ TSCHK_LEGACY_DATA_DIR: dir, TSCHK_DEEPSEEK_API_URL: mock.baseUrl });
      const other = await upsertProvider(s.db, { name: 'other-keys', kind: 'deepseek-key', checkUrl: mock.baseUrl });
      await importTokens(s.db, { providerId: other.id, pool: 'default', entries: ['sk-not-in-the-file-0000000000000003'], source: 'cli' });

      expect((await s.call('GET', '/api/OfficialTokenCheck/Check/deep/list')).text).toBe('["4722170","5000000"]');
      expect(Object.entries((await s.call('GET', '/api/OfficialTokenCheck/Check/deep/keylist')).json())).toEqual([
        [mask(keyB), '1.25-true'],
        [mask(keyA), '7.00-true'],
      ]);

      writeFileSync(users, '13900000021-pw-1\n13900000023-unknown-account\n');
      expect((await s.call('GET', '/api/OfficialTokenCheck/Check/deep/list')).text).toBe('["5000000","invalid"]');
    });
  });
});
