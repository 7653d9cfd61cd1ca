import { Agent } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  classifyLoginAnswer,
  classifySummaryAnswer,
  createDeepseekAccountChecker,
  deviceIdFor,
  LOGIN_COOLDOWN_MS,
  parseDeepseekAccount,
} from '../src/checkers/deepseek-account.js';
import type { Checker } from '../src/checkers/types.js';
import { createLogger } from '../src/logger.js';
import { CapturedLog } from './helpers/daemon.js';
import { PATHS, startMockOfficial, ugly, type MockOfficial } from './helpers/mock-official.js';

const json = (v: unknown) => JSON.stringify(v);

describe('parseDeepseekAccount', () => {
  it.each([
    ['13800138000-secret', { account: '13800138000', password: 'secret', by: 'mobile' }],
    ['user@example.com-pa-ss-word', { account: 'user@example.com', password: 'pa-ss-word', by: 'email' }],
    ['a@b.c--leading-dash', { account: 'a@b.c', password: '-leading-dash', by: 'email' }],
    ['no-dash-missing', { account: 'no', password: 'dash-missing', by: 'mobile' }],
    ['nodash', undefined],
    ['-password-only', undefined],
    ['13800138000-', undefined],
  ])('%s', (token, parsed) => expect(parseDeepseekAccount(token)).toEqual(parsed));

  it('derives one device id per account, the same in every process', () => {
    expect(deviceIdFor('13800138000')).toBe(deviceIdFor('13800138000'));
    expect(deviceIdFor('13800138000')).not.toBe(deviceIdFor('13800138001'));
    expect(deviceIdFor('13800138000')).toMatch(/^[0-9a-f]{32}$/);
  });
});

describe('classifyLoginAnswer', () => {
  const env = (data: unknown, code = 0) => json({ code, msg: '', data });
  it.each([
    ['user.token', 200, env({ biz_code: 0, biz_msg: '', biz_data: { code: 0, user: { token: 'S1' } } }), { ok: true, session: 'S1' }],
    ['biz_data.token', 200, env({ biz_code: 0, biz_data: { token: 'S2' } }), { ok: true, session: 'S2' }],
  ])('%s → a session', (_n, status, body, outcome) => expect(classifyLoginAnswer(status, body)).toEqual(outcome));

  it.each([
    ['wrong credentials', 200, env({ biz_code: 2, biz_msg: 'PASSWORD_OR_USER_NAME_IS_WRONG', biz_data: null }), 'dead', 'login_rejected'],
    ['success without a token', 200, env({ biz_code: 0, biz_data: { user: {} } }), 'unknown', 'bad_response'],
    ['top-level error code', 200, env(null, 40300), 'unknown', 'upstream_error'],
    ['no biz_code', 200, env({}), 'unknown', 'upstream_error'],
    ['captcha page', 200, '<html><body>captcha</body></html>', 'unknown', 'login_blocked'],
    ['empty body', 200, '', 'unknown', 'login_blocked'],
    ['429', 429, '', 'unknown', 'rate_limited'],
    ['WAF 403', 403, '<html>blocked</html>', 'unknown', 'http_403'],
    ['502', 502, '', 'unknown', 'http_502'],
  ])('%s → %s', (_n, status, body, verdict, reason) => {
    const outcome = classifyLoginAnswer(status, body);
    expect(outcome.ok).toBe(false);
    if (!outcome.ok) expect(outcome.result).toMatchObject({ verdict, reason });
  });
});

describe('classifySummaryAnswer', () => {
  const fields = (estimation: unknown) => ({
    current_token: 0,
    normal_wallets: [{ currency: 'CNY', balance: '5.00', token_estimation: '1' }],
    bonus_wallets: [],
    total_available_token_estimation: estimation,
  });
  it.each([
    ['biz_data envelope', 200, json({ code: 0, msg: '', data: { biz_code: 0, biz_data: fields('4722170') } }), 'live', '4722170'],
    ['fields directly in data', 200, json({ code: 0, msg: '', data: fields(5000000) }), 'live', '5000000'],
    ['zero', 200, json({ code: 0, msg: '', data: { biz_code: 0, biz_data: fields('0') } }), 'exhausted', '0'],
    ['no estimation', 200, json({ code: 0, msg: '', data: { biz_code: 0, biz_data: {} } }), 'unknown', undefined],
    ['other error code', 200, json({ code: 500, msg: 'oops', data: null }), 'unknown', undefined],
    ['HTML', 200, '<html></html>', 'unknown', undefined],
    ['429', 429, '', 'unknown', undefined],
  ])('%s → %s', (_n, status, body, verdict, balance) => {
    const s = classifySummaryAnswer(status, body);
    expect(s.expired).toBe(false);
    if (!s.expired) {
      expect(s.result.verdict).toBe(verdict);
      expect(s.result.balance).toBe(balance);
      if (balance !== undefined) expect(s.result.currency).toBe('tokens');
    }
  });

  it.each([
    ['401', 401, ''],
    ['403', 403, ''],
    ['code 40003', 200, json({ code: 40003, msg: 'Authorization Failed (invalid token)', data: null })],
    ['code 40002', 200, json({ code: 40002, msg: 'Token is invalid', data: null })],
    ['biz_code 40003', 200, json({ code: 0, msg: '', data: { biz_code: 40003, biz_msg: 'expired' } })],
  ])('%s → session expired', (_n, status, body) => expect(classifySummaryAnswer(status, body)).toEqual({ expired: true }));

  it('shows the money behind the estimation in detail', () => {
    const s = classifySummaryAnswer(
      200,
      json({ code: 0, data: { biz_code: 0, biz_data: { ...fields('10'), bonus_wallets: [{ currency: 'CNY', balance: '10.00' }] } } }),
    );
    expect(!s.expired && s.result.detail).toBe('topped-up CNY 5.00; granted CNY 10.00');
  });
});

describe('the deepseek-account checker against a mock platform', () => {
  let mock: MockOfficial;
  const dispatcher = new Agent({ connections: 8 });
  let log: CapturedLog;
  let clock: number;
  let checker: Checker;
  /** A silent platform costs a test `timeoutMs` of real time: 100 ms for those, 5 s for the others. */
  const check = (token: string, timeoutMs = 5_000) =>
    checker.check(
      token,
      { providerName: 'deep_user', kind: 'deepseek-account', checkUrl: mock.baseUrl },
      { dispatcher, timeoutMs, logger: createLogger('debug', log.stream) },
    );
  const loginCalls = () => mock.calls.filter((c) => c.path === PATHS.login).length;
  const summaryCalls = () => mock.calls.filter((c) => c.path === PATHS.summary).length;

  beforeAll(async () => {
    mock = await startMockOfficial();
  });
  beforeEach(() => {
    mock.calls.length = 0;
    clock = 1_000_000;
    log = new CapturedLog();
    checker = createDeepseekAccountChecker({ now: () => clock });
  });
  afterAll(async () => {
    await mock.close();
    await dispatcher.close();
  });

  it('logs in once, then reuses the session', async () => {
    mock.addAccount('13800000001', { password: 'pw-1-secret', estimation: '4722170' });
    expect(await check('13800000001-pw-1-secret')).toMatchObject({
      verdict: 'live',
      reason: 'upstream_accepted',
      balance: '4722170',
      currency: 'tokens',
    });
    expect(await check('13800000001-pw-1-secret')).toMatchObject({ verdict: 'live', balance: '4722170' });
    expect([loginCalls(), summaryCalls()]).toEqual([1, 2]);
    const [login] = mock.logins();
    expect(login).toMatchObject({ email: '', mobile: '13800000001', area_code: '+86', os: 'web', device_id: deviceIdFor('13800000001') });
  });

  it('logs an e-mail account in by e-mail and reads the older summary shape', async () => {
    mock.addAccount('ops@example.com', { password: 'mail-pass', estimation: '5000000', legacyShape: true });
    expect(await check('ops@example.com-mail-pass')).toMatchObject({ verdict: 'live', balance: '5000000' });
    expect(mock.logins()[0]).toMatchObject({ email: 'ops@example.com', mobile: '' });
  });

  it('an account with no tokens left is exhausted', async () => {
    mock.addAccount('13800000002', { password: 'pw2', estimation: '0' });
    expect(await check('13800000002-pw2')).toMatchObject({ verdict: 'exhausted', reason: 'no_balance', balance: '0' });
  });

  it('wrong credentials are dead, then the account rests for the cool-down', async () => {
    mock.addAccount('13800000003', { password: 'right', estimation: '1' });
    expect(await check('13800000003-wrong')).toMatchObject({ verdict: 'dead', reason: 'login_rejected', httpStatus: 200 });
    clock += LOGIN_COOLDOWN_MS - 1_000;
    expect(await check('13800000003-wrong')).toMatchObject({ verdict: 'unknown', reason: 'login_cooldown', httpStatus: null });
    expect(loginCalls()).toBe(1);
    clock += 1_000;
    expect(await check('13800000003-wrong')).toMatchObject({ verdict: 'dead', reason: 'login_rejected' });
    expect(loginCalls()).toBe(2);
  });

  it('a blocked login (429, captcha page, empty body, timeout) is unknown and also rests', async () => {
    const cases = [
      ['13800000010', ugly.rateLimited(30), 'rate_limited'],
      ['13800000011', ugly.html200, 'login_blocked'],
      ['13800000012', ugly.empty200, 'login_blocked'],
      ['13800000013', 'timeout', 'timeout'],
    ] as const;
    for (const [account, login, reason] of cases) {
      mock.addAccount(account, { password: 'pw', estimation: '9', login });
      expect(await check(`${account}-pw`, login === 'timeout' ? 100 : undefined)).toMatchObject({ verdict: 'unknown', reason });
      expect(await check(`${account}-pw`)).toMatchObject({ verdict: 'unknown', reason: 'login_cooldown' });
    }
    expect(loginCalls()).toBe(cases.length);
    const warnings = log
      .entries()
      .filter((e) => e.msg === 'DeepSeek platform login failed; this account is not tried again before the cool-down ends');
    expect(warnings.map((w) => w.reason)).toEqual(cases.map((c) => c[2]));
  });

  it('logs in again once when the session expired', async () => {
    mock.addAccount('13800000004', { password: 'pw4', estimation: '100' });
    await check('13800000004-pw4');
    mock.expireSessions();
    expect(await check('13800000004-pw4')).toMatchObject({ verdict: 'live', balance: '100' });
    expect([loginCalls(), summaryCalls()]).toEqual([2, 3]);
  });

  it('does not loop when even a fresh session is refused', async () => {
    mock.addAccount('13800000005', { password: 'pw5', estimation: '100' });
    await check('13800000005-pw5');
    mock.addAccount('13800000005', { password: 'pw5', estimation: '100', refuseSessions: true });
    expect(await check('13800000005-pw5')).toMatchObject({ verdict: 'unknown', reason: 'session_expired' });
    expect([loginCalls(), summaryCalls()]).toEqual([2, 3]);
  });

  it('two checks of one account at once share one login', async () => {
    mock.addAccount('13800000006', { password: 'pw6', estimation: '7' });
    const [a, b] = await Promise.all([check('13800000006-pw6'), check('13800000006-pw6')]);
    expect([a.verdict, b.verdict]).toEqual(['live', 'live']);
    expect(loginCalls()).toBe(1);
  });

  it('a line without a dash is a malformed account, not a dead one, and nothing is sent', async () => {
    expect(await check('13800000007')).toMatchObject({ verdict: 'unknown', reason: 'malformed_account' });
    expect(mock.calls).toHaveLength(0);
  });

  it('never logs a password or a session', async () => {
    mock.addAccount('13800000008', { password: 'very-secret-password', estimation: '1' });
    await check('13800000008-very-secret-password');
    await check('13800000008-wrong-password-here');
    const sessions = mock.calls.filter((c) => c.path === PATHS.summary).map((c) => c.authorization!.slice('Bearer '.length));
    expect(sessions.length).toBeGreaterThan(0);
    for (const secret of ['very-secret-password', 'wrong-password-here', ...sessions]) expect(log.text).not.toContain(secret);
    expect(log.text).not.toContain('13800000008');
  });
});
