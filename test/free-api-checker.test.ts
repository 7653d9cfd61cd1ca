import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { classifyFreeApiAnswer, freeApiChecker } from '../src/checkers/free-api.js';
import { checkSafely } from '../src/checkers/index.js';
import { createLogger } from '../src/logger.js';
import { CapturedLog } from './helpers/daemon.js';
import { startMockFreeApi, type Behaviour, type MockFreeApi } from './helpers/mock-free-api.js';

const envelope = (code: number, message: string) => JSON.stringify({ code, message, data: null });

describe('classifyFreeApiAnswer: every row of the free-api contract', () => {
  it.each([
    ['live true', 200, '{"live": true}', 'live', 'upstream_accepted'],
    ['live false', 200, '{"live": false}', 'dead', 'upstream_rejected'],
    ['-2001 invalid token', 200, envelope(-2001, '请求失败: Authorization Failed (invalid token)'), 'dead', 'upstream_auth_failed'],
    ['-2001 Missing Token', 200, envelope(-2001, 'Missing Token'), 'dead', 'upstream_auth_failed'],
    ['-2001 40002', 200, envelope(-2001, '[请求deepseek失败]: 40002 Token is invalid'), 'dead', 'upstream_auth_failed'],
    ['-2001 40003', 200, envelope(-2001, 'biz_code 40003'), 'dead', 'upstream_auth_failed'],
    ['-2001 HTTP 401', 200, envelope(-2001, 'Request failed with status code 401'), 'dead', 'upstream_auth_failed'],
    ['-2001 token失效', 200, envelope(-2001, '您的token失效了'), 'dead', 'upstream_auth_failed'],
    ['-2001 未登录', 200, envelope(-2001, '用户未登录'), 'dead', 'upstream_auth_failed'],
    ['-2001 other upstream trouble', 200, envelope(-2001, '请求失败: 服务暂时不可用'), 'unknown', 'upstream_error'],
    ['-2001 a 4010 is not a 401', 200, envelope(-2001, 'error 40100 rate'), 'unknown', 'upstream_error'],
    ['-2001 a status 500', 200, envelope(-2001, 'Request failed with status code 500'), 'unknown', 'upstream_error'],
    ['-1000 network trouble', 200, envelope(-1000, 'getaddrinfo ENOTFOUND kimi.moonshot.cn'), 'unknown', 'upstream_unreachable'],
    ['-2000 our bad request', 200, envelope(-2000, 'Params body.token invalid'), 'unknown', 'bad_request'],
    ['other JSON', 200, '{"hello":"world"}', 'unknown', 'bad_response'],
    ['JSON array', 200, '[1,2]', 'unknown', 'bad_response'],
    ['JSON null', 200, 'null', 'unknown', 'bad_response'],
    ['live as a string', 200, '{"live":"true"}', 'unknown', 'bad_response'],
    ['broken JSON', 200, '{"live": tr', 'unknown', 'bad_response'],
    ['HTML with 200', 200, '<html><body>Welcome</body></html>', 'unknown', 'bad_response'],
    ['empty body', 200, '', 'unknown', 'bad_response'],
    ['proxy 502', 502, '<html><center>502 Bad Gateway</center></html>', 'unknown', 'http_502'],
    ['503', 503, 'Service Unavailable', 'unknown', 'http_503'],
    ['504', 504, '', 'unknown', 'http_504'],
    ['404 wrong path', 404, 'Not Found', 'unknown', 'http_404'],
    ['429', 429, '', 'unknown', 'rate_limited'],
    ['401 from a proxy is not the token', 401, '{"live": false}', 'unknown', 'http_401'],
  ])('%s → %s', (_name, status, body, verdict, reason) => {
    expect(classifyFreeApiAnswer(status, body)).toMatchObject({ verdict, reason });
  });
});

describe('freeApiChecker over real HTTP', () => {
  let mock: MockFreeApi;
  const dispatcher = new Agent({ connections: 8 });
  const log = new CapturedLog();
  const ctx = { dispatcher, timeoutMs: 5_000, logger: createLogger('debug', log.stream) };
  /** What a silent free-api costs the test in real time; the answers keep the generous timeout above. */
  const silentCtx = { ...ctx, timeoutMs: 100 };
  const check = async (token: string, behaviour: Behaviour, url?: string) => {
    mock.setBehaviour(token, behaviour);
    const context = behaviour === 'timeout' ? silentCtx : ctx;
    return freeApiChecker.check(token, { providerName: 'deep', kind: 'free-api', checkUrl: url ?? mock.checkUrl }, context);
  };

  beforeAll(async () => {
    mock = await startMockFreeApi();
  });
  afterAll(async () => {
    await mock.close();
    await dispatcher.close();
  });

  it('sends one token per call as {"token": …} to /token/check', async () => {
    const r = await check('tok-live-123456789', 'live');
    expect(r).toMatchObject({ verdict: 'live', httpStatus: 200 });
    expect(mock.calls.at(-1)?.token).toBe('tok-live-123456789');
    expect(r.latencyMs).toBeGreaterThanOrEqual(0);
  });

  it.each<[Extract<Behaviour, string>, string, string]>([
    ['dead', 'dead', 'upstream_rejected'],
    ['auth_failed', 'dead', 'upstream_auth_failed'],
    ['upstream_error', 'unknown', 'upstream_error'],
    ['unreachable', 'unknown', 'upstream_unreachable'],
    ['html_502', 'unknown', 'http_502'],
    ['http_503', 'unknown', 'http_503'],
    ['not_found', 'unknown', 'http_404'],
    ['broken_json', 'unknown', 'bad_response'],
    ['other_json', 'unknown', 'bad_response'],
    ['html_200', 'unknown', 'bad_response'],
    ['reset', 'unknown', 'connection_reset'],
    ['timeout', 'unknown', 'timeout'],
  ])('%s answers → %s (%s)', async (behaviour, verdict, reason) => {
    expect(await check(`tok-${behaviour}-abcdefgh`, behaviour)).toMatchObject({ verdict, reason });
  });

  it('reads Retry-After of a 429', async () => {
    expect(await check('tok-429-abcdefgh', { kind: 'rate_limited', retryAfterS: 7 })).toMatchObject({
      verdict: 'unknown',
      reason: 'rate_limited',
      httpStatus: 429,
      retryAfterS: 7,
    });
  });

  it('calls a refused connection unknown', async () => {
    const closed = await startMockFreeApi();
    const url = closed.checkUrl;
    await closed.close();
    expect(await check('tok-refused-abcdefgh', 'live', url)).toMatchObject({ verdict: 'unknown', reason: 'connect_refused' });
  });

  it('logs a -2000 as our bug, without the token', async () => {
    await check('tok-badreq-abcdefgh', 'bad_request');
    expect(log.text).toContain('this is a tschk bug');
    expect(log.text).not.toContain('tok-badreq-abcdefgh');
  });
});

describe('checkSafely', () => {
  it('answers unknown when a checker throws, and logs the error without the token', async () => {
    const log = new CapturedLog();
    const secret = 'tok-throws-abcdefghij';
    const buggy = {
      kind: 'buggy',
      requiresUrl: false,
      check: async (t: string) => {
        throw new Error(`cannot parse ${t}`);
      },
    };
    const ctx = { dispatcher: new Agent(), timeoutMs: 100, logger: createLogger('debug', log.stream) };

    const r = await checkSafely(buggy, secret, { providerName: 'p', kind: 'buggy', checkUrl: null }, ctx);

    expect(r).toMatchObject({ verdict: 'unknown', reason: 'checker_error' });
    expect(log.text).toContain('checker failed');
    expect(log.text).toContain('tok-…ghij');
    expect(log.text).not.toContain(secret);
    await ctx.dispatcher.close();
  });
});
