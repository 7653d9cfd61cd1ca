import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decimalText, endpointUrl } from '../src/checkers/balance.js';
import { classifyDeepseekBalance } from '../src/checkers/deepseek-key.js';
import { checkerFor, createCheckers, kindRequirements, providerKinds } from '../src/checkers/index.js';
import { classifyMoonshotBalance, moonshotCurrency } from '../src/checkers/moonshot-key.js';
import { classifyOpenaiModels } from '../src/checkers/openai-compatible.js';
import { classifyOpenrouterKey } from '../src/checkers/openrouter-key.js';
import { classifyStepfunAccount } from '../src/checkers/stepfun-key.js';
import { createLogger } from '../src/logger.js';
import { CapturedLog } from './helpers/daemon.js';
import { NGINX_502 } from './helpers/mock-free-api.js';
import { answers, PATHS, startMockOfficial, ugly, type MockOfficial, type Reply } from './helpers/mock-official.js';

const json = (v: unknown) => JSON.stringify(v);
const HTML = '<html><body>Welcome</body></html>';

describe('decimalText and endpointUrl', () => {
  it.each([
    ['110.00', '110.00'],
    [' 5 ', '5'],
    [49.58, '49.58'],
    [0, '0'],
    [-1.5, '-1.5'],
    [1e-7, '0.0000001'],
    ['4722170', '4722170'],
    ['12abc', null],
    [null, null],
    [Number.NaN, null],
    [true, null],
  ])('%j → %j', (value, text) => expect(decimalText(value)).toBe(text));

  it.each([
    ['https://api.moonshot.cn', '/v1/users/me/balance', 'https://api.moonshot.cn/v1/users/me/balance'],
    ['https://api.moonshot.ai/v1/', '/v1/users/me/balance', 'https://api.moonshot.ai/v1/users/me/balance'],
    ['https://dashscope.aliyuncs.com/compatible-mode', '/v1/models', 'https://dashscope.aliyuncs.com/compatible-mode/v1/models'],
    ['https://api.groq.com/openai/v1', '/v1/models', 'https://api.groq.com/openai/v1/models'],
    ['https://openrouter.ai/api', '/v1/key', 'https://openrouter.ai/api/v1/key'],
  ])('%s + %s', (base, path, url) => expect(endpointUrl(base, path)).toBe(url));
});

describe('classifyDeepseekBalance', () => {
  const balance = (available: boolean, infos: Array<[string, string | number]>) =>
    json({
      is_available: available,
      balance_infos: infos.map(([currency, total_balance]) => ({
        currency,
        total_balance,
        granted_balance: '0',
        topped_up_balance: total_balance,
      })),
    });
  it.each([
    ['CNY only', 200, balance(true, [['CNY', '110.00']]), 'live', 'upstream_accepted', '110.00', 'CNY'],
    [
      'USD then CNY: the CNY entry',
      200,
      balance(true, [
        ['USD', '3.50'],
        ['CNY', '20.00'],
      ]),
      'live',
      'upstream_accepted',
      '20.00',
      'CNY',
    ],
    ['USD only', 200, balance(true, [['USD', '3.50']]), 'live', 'upstream_accepted', '3.50', 'USD'],
    ['amount as a number', 200, balance(true, [['CNY', 7.5]]), 'live', 'upstream_accepted', '7.5', 'CNY'],
    ['not available', 200, balance(false, [['CNY', '0.00']]), 'exhausted', 'no_balance', '0.00', 'CNY'],
    ['no balance infos', 200, json({ is_available: true, balance_infos: [] }), 'live', 'upstream_accepted', null, null],
    ['401', 401, json({ error: { message: 'Authentication Fails' } }), 'dead', 'invalid_key', undefined, undefined],
    ['402', 402, json({ error: { message: 'Insufficient Balance' } }), 'exhausted', 'no_balance', undefined, undefined],
    ['429', 429, '', 'unknown', 'rate_limited', undefined, undefined],
    ['503', 503, 'busy', 'unknown', 'http_503', undefined, undefined],
    ['502 HTML', 502, NGINX_502, 'unknown', 'http_502', undefined, undefined],
    ['200 HTML', 200, HTML, 'unknown', 'bad_response', undefined, undefined],
    ['200 error envelope', 200, json({ error: { message: 'Authentication Fails' } }), 'unknown', 'bad_response', undefined, undefined],
    ['is_available as text', 200, json({ is_available: 'true', balance_infos: [] }), 'unknown', 'bad_response', undefined, undefined],
  ])('%s → %s', (_n, status, body, verdict, reason, balanceText, currency) => {
    const c = classifyDeepseekBalance(status, body);
    expect(c).toMatchObject({ verdict, reason });
    expect(c.balance).toBe(balanceText);
    expect(c.currency).toBe(currency);
  });

  it('keeps the other currencies in detail', () => {
    expect(
      classifyDeepseekBalance(
        200,
        balance(true, [
          ['USD', '3.50'],
          ['CNY', '20.00'],
        ]),
      ).detail,
    ).toBe('USD 3.50; CNY 20.00');
  });
});

describe('classifyMoonshotBalance', () => {
  const body = (available: unknown, code = 0) =>
    json({ code, data: { available_balance: available, voucher_balance: 1, cash_balance: 2 }, scode: '0x0', status: true });
  it.each([
    ['positive', 200, body(49.58), 'live', '49.58'],
    ['as text', 200, body('3.00'), 'live', '3.00'],
    ['zero', 200, body(0), 'exhausted', '0'],
    ['negative (arrears)', 200, body(-0.42), 'exhausted', '-0.42'],
    [
      'error with 200',
      200,
      json({ code: 1, error: { message: 'Invalid Authentication', type: 'invalid_authentication_error' } }),
      'unknown',
      undefined,
    ],
    ['non-zero code', 200, body(5, 7), 'unknown', undefined],
    ['401', 401, json({ error: { type: 'invalid_authentication_error' } }), 'dead', undefined],
    ['402 is not in the contract', 402, '', 'unknown', undefined],
    ['429', 429, '', 'unknown', undefined],
    ['HTML', 200, HTML, 'unknown', undefined],
  ])('%s → %s', (_n, status, b, verdict, balance) => {
    const c = classifyMoonshotBalance(status, b, 'CNY');
    expect(c.verdict).toBe(verdict);
    expect(c.balance).toBe(balance);
    if (balance !== undefined) expect(c.currency).toBe('CNY');
  });

  it.each([
    ['https://api.moonshot.cn', 'CNY'],
    ['https://api.moonshot.ai/v1', 'USD'],
    ['http://127.0.0.1:8080', 'CNY'],
  ])('currency of %s is %s', (base, currency) => expect(moonshotCurrency(base)).toBe(currency));
});

describe('classifyStepfunAccount', () => {
  it.each([
    ['prepaid with balance', 200, json({ object: 'account', type: 'prepaid', balance: 12.3 }), 'live', '12.3'],
    ['prepaid at zero', 200, json({ object: 'account', type: 'prepaid', balance: 0 }), 'exhausted', '0'],
    ['postpaid at zero still works', 200, json({ object: 'account', type: 'postpaid', balance: 0 }), 'live', '0'],
    ['401', 401, json({ error: { message: 'Incorrect API key provided' } }), 'dead', undefined],
    ['402', 402, '', 'exhausted', undefined],
    ['another object', 200, json({ object: 'error', message: 'x' }), 'unknown', undefined],
    ['502', 502, NGINX_502, 'unknown', undefined],
  ])('%s → %s', (_n, status, body, verdict, balance) => {
    const c = classifyStepfunAccount(status, body);
    expect(c.verdict).toBe(verdict);
    expect(c.balance).toBe(balance);
  });
});

describe('classifyOpenrouterKey', () => {
  const key = (limitRemaining: unknown) =>
    json({ data: { label: 'x', limit: 10, limit_remaining: limitRemaining, usage: 1, is_free_tier: false } });
  it.each([
    ['remaining credit', 200, key(8.5), 'live', '8.5', 'USD'],
    ['no limit', 200, key(null), 'live', null, null],
    ['limit used up', 200, key(0), 'exhausted', '0', 'USD'],
    ['over the limit', 200, key(-0.2), 'exhausted', '-0.2', 'USD'],
    ['401', 401, json({ error: { message: 'No auth credentials found', code: 401 } }), 'dead', undefined, undefined],
    ['402', 402, '', 'exhausted', undefined, undefined],
    ['no data', 200, json({ error: { message: 'x' } }), 'unknown', undefined, undefined],
    ['429', 429, '', 'unknown', undefined, undefined],
  ])('%s → %s', (_n, status, body, verdict, balance, currency) => {
    const c = classifyOpenrouterKey(status, body);
    expect(c.verdict).toBe(verdict);
    expect(c.balance).toBe(balance);
    expect(c.currency).toBe(currency);
  });
});

describe('classifyOpenaiModels', () => {
  it.each([
    ['models listed', 200, json({ object: 'list', data: [] }), 'live', 'upstream_accepted'],
    ['200 without data', 200, json({ error: { message: 'bad' } }), 'unknown', 'bad_response'],
    ['200 HTML', 200, HTML, 'unknown', 'bad_response'],
    ['401', 401, json({ error: { message: 'Incorrect API key provided: sk-abc...', code: 'invalid_api_key' } }), 'dead', 'invalid_key'],
    [
      '403 deactivated',
      403,
      json({ error: { message: 'Your account has been deactivated', code: 'account_deactivated' } }),
      'dead',
      'account_deactivated',
    ],
    ['403 banned (zh)', 403, json({ error: { message: '该账号已被封禁' } }), 'dead', 'account_deactivated'],
    [
      '403 WAF page banning our IP',
      403,
      '<html><title>Access denied | api.example.com used Cloudflare to restrict access</title><p>The owner of this website has banned your IP address (203.0.113.7).</p></html>',
      'unknown',
      'http_403',
    ],
    [
      '403 JSON banning our IP',
      403,
      json({ error: { message: 'Your IP address has been banned', code: 'ip_banned' } }),
      'unknown',
      'http_403',
    ],
    [
      '403 region',
      403,
      json({ error: { message: 'Country, region, or territory not supported', code: 'unsupported_country_region_territory' } }),
      'unknown',
      'http_403',
    ],
    [
      '429 insufficient_quota (code)',
      429,
      json({ error: { message: 'You exceeded your current quota', type: 'insufficient_quota', code: 'insufficient_quota' } }),
      'exhausted',
      'no_balance',
    ],
    [
      '429 insufficient_quota (type only)',
      429,
      json({ error: { message: 'quota', type: 'insufficient_quota', code: null } }),
      'exhausted',
      'no_balance',
    ],
    [
      '429 rate limit',
      429,
      json({ error: { message: 'Rate limit reached', type: 'requests', code: 'rate_limit_exceeded' } }),
      'unknown',
      'rate_limited',
    ],
    ['500', 500, '', 'unknown', 'http_500'],
  ])('%s → %s', (_n, status, body, verdict, reason) => {
    expect(classifyOpenaiModels(status, body)).toMatchObject({ verdict, reason });
  });
});

interface Kind {
  kind: string;
  path: string;
  base: (m: MockOfficial) => string;
  live: Reply;
  exhausted: Reply;
  balance: string | null;
  currency: string | null;
}

const KINDS: Kind[] = [
  {
    kind: 'deepseek-key',
    path: PATHS.deepseek,
    base: (m) => m.baseUrl,
    live: answers.deepseekBalance(true, [
      { currency: 'USD', total: '2.00' },
      { currency: 'CNY', total: '110.00' },
    ]),
    exhausted: answers.deepseekBalance(false, [{ currency: 'CNY', total: '0.00' }]),
    balance: '110.00',
    currency: 'CNY',
  },
  {
    kind: 'moonshot-key',
    path: PATHS.moonshot,
    base: (m) => m.baseUrl,
    live: answers.moonshotBalance(49.58),
    exhausted: answers.moonshotBalance(0),
    balance: '49.58',
    currency: 'CNY',
  },
  {
    kind: 'stepfun-key',
    path: PATHS.stepfun,
    base: (m) => `${m.baseUrl}/v1`,
    live: answers.stepfunAccount('prepaid', 12.3),
    exhausted: answers.stepfunAccount('prepaid', 0),
    balance: '12.3',
    currency: 'CNY',
  },
  {
    kind: 'openrouter-key',
    path: PATHS.openrouter,
    base: (m) => `${m.baseUrl}/api`,
    live: answers.openrouterKey(8.5),
    exhausted: answers.openrouterKey(0),
    balance: '8.5',
    currency: 'USD',
  },
  {
    kind: 'openai-compatible',
    path: PATHS.models,
    base: (m) => m.baseUrl,
    live: answers.models(),
    exhausted: {
      status: 429,
      json: { error: { message: 'You exceeded your current quota', type: 'insufficient_quota', code: 'insufficient_quota' } },
    },
    balance: null,
    currency: null,
  },
];

describe('official key checkers over real HTTP', () => {
  let mock: MockOfficial;
  const dispatcher = new Agent({ connections: 8 });
  const log = new CapturedLog();
  const ctx = { dispatcher, timeoutMs: 5_000, logger: createLogger('debug', log.stream) };
  /** What a silent server costs the test in real time; the answers keep the generous timeout above. */
  const silentCtx = { ...ctx, timeoutMs: 100 };
  const used: string[] = [];
  const checkers = createCheckers();
  let n = 0;
  const check = async (k: Kind, reply: Reply | 'unregistered', context = ctx) => {
    const key = `sk-${k.kind}-${++n}-${'x'.repeat(24)}`;
    used.push(key);
    if (reply !== 'unregistered') mock.setKey(k.path, key, reply);
    const checker = checkerFor(k.kind, checkers)!;
    return checker.check(key, { providerName: 'p', kind: k.kind, checkUrl: k.base(mock) }, context);
  };

  beforeAll(async () => {
    mock = await startMockOfficial();
  });
  afterAll(async () => {
    await mock.close();
    await dispatcher.close();
  });

  it('every kind is registered', () => {
    expect(providerKinds()).toEqual(expect.arrayContaining(KINDS.map((k) => k.kind).concat('deepseek-account')));
    expect(KINDS.map((k) => [k.kind, kindRequirements(k.kind)!.requiresUrl])).toEqual([
      ['deepseek-key', false],
      ['moonshot-key', false],
      ['stepfun-key', false],
      ['openrouter-key', false],
      ['openai-compatible', true],
    ]);
  });

  describe.each(KINDS)('$kind', (k) => {
    it('live, with its balance', async () => {
      const r = await check(k, k.live);
      expect(r).toMatchObject({ verdict: 'live', httpStatus: 200 });
      expect([r.balance ?? null, r.currency ?? null]).toEqual([k.balance, k.currency]);
    });
    it('dead on 401', async () => {
      expect(await check(k, 'unregistered')).toMatchObject({ verdict: 'dead', httpStatus: 401 });
    });
    it('exhausted', async () => {
      expect(await check(k, k.exhausted)).toMatchObject({ verdict: 'exhausted', reason: 'no_balance' });
    });
    it('429 is unknown and carries Retry-After', async () => {
      expect(await check(k, ugly.rateLimited(7))).toMatchObject({
        verdict: 'unknown',
        reason: 'rate_limited',
        httpStatus: 429,
        retryAfterS: 7,
      });
    });
    it('5xx is unknown', async () => {
      expect(await check(k, ugly.http503)).toMatchObject({ verdict: 'unknown', reason: 'http_503' });
    });
    it('an HTML page is unknown, with 502 or with 200', async () => {
      expect(await check(k, ugly.html502)).toMatchObject({ verdict: 'unknown', reason: 'http_502' });
      expect(await check(k, ugly.html200)).toMatchObject({ verdict: 'unknown', reason: 'bad_response' });
    });
    it('a reset or a silent server is unknown', async () => {
      expect(await check(k, 'reset')).toMatchObject({ verdict: 'unknown', reason: 'connection_reset', httpStatus: null });
      expect(await check(k, 'timeout', silentCtx)).toMatchObject({ verdict: 'unknown', reason: 'timeout', httpStatus: null });
    });
  });

  it('sends each key only as a Bearer to its own endpoint, and never logs it', () => {
    for (const key of used) {
      const carrying = mock.calls.filter((c) => c.authorization === `Bearer ${key}`);
      expect(carrying.length).toBeGreaterThan(0);
      const kind = KINDS.find((k) => key.startsWith(`sk-${k.kind}-`))!;
      expect(new Set(carrying.map((c) => c.path))).toEqual(new Set([kind.path]));
      expect(mock.calls.filter((c) => c.body.includes(key) || c.path.includes(key))).toEqual([]);
      expect(log.text).not.toContain(key);
    }
  });
});
