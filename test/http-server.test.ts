import { request } from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { bearerToken, requireApiToken, sameSecret } from '../src/http/auth.js';
import { HttpError, matchRoute, reply, type Route } from '../src/http/router.js';
import { startHttpServer } from '../src/http/server.js';
import { freshDatabaseUrl } from './helpers/databases.js';
import { testDaemon } from './helpers/daemon.js';
import { API_SECRET, servedDaemon, type Served } from './helpers/http.js';

const route = (method: Route['method'], path: string): Route => ({ method, path, auth: 'none', handler: () => reply(200, path) });

describe('matchRoute', () => {
  const routes = [
    route('GET', '/healthz'),
    route('POST', '/api/LLM_TokenCheck/Check/{service}'),
    route('POST', '/api/LLM_TokenCheck/Check/{service}/free'),
    route('GET', '/api/v1/tokens'),
    route('POST', '/api/v1/tokens'),
    route('GET', '/api/v1/tokens/{id}/history'),
  ];
  it.each([
    { method: 'GET', path: '/healthz', want: { kind: 'found', path: '/healthz', params: {} } },
    { method: 'POST', path: '/api/LLM_TokenCheck/Check/deep', want: { kind: 'found', params: { service: 'deep' } } },
    { method: 'POST', path: '/api/llm_tokencheck/CHECK/deep', want: { kind: 'found', params: { service: 'deep' } } },
    { method: 'POST', path: '/api/LLM_TokenCheck/Check/deep/free', want: { kind: 'found', params: { service: 'deep' } } },
    { method: 'POST', path: '/api/LLM_TokenCheck/Check/my%20kimi', want: { kind: 'found', params: { service: 'my kimi' } } },
    { method: 'GET', path: '/api/v1/tokens/17/history', want: { kind: 'found', params: { id: '17' } } },
    { method: 'GET', path: '/api/LLM_TokenCheck/Check/deep', want: { kind: 'wrong_method', allow: ['POST'] } },
    { method: 'DELETE', path: '/api/v1/tokens', want: { kind: 'wrong_method', allow: ['GET', 'POST'] } },
    { method: 'GET', path: '/api/LLM_TokenCheck/Check', want: { kind: 'not_found' } },
    { method: 'GET', path: '/api/v1/tokens/17/history/more', want: { kind: 'not_found' } },
    { method: 'POST', path: '/api/LLM_TokenCheck/Check/%E0%A4%A', want: { kind: 'not_found' } },
  ])('$method $path → $want.kind', ({ method, path, want }) => {
    const m = matchRoute(routes, method, path);
    const { path: wantPath, ...rest } = want;
    expect(m).toMatchObject(rest);
    if (wantPath) expect(m.kind === 'found' && m.route.path).toBe(wantPath);
  });
});

describe('auth', () => {
  const headers = (authorization?: string) => (authorization === undefined ? {} : { authorization });
  const outcome = (authorization: string | undefined, secret: string | undefined) => {
    try {
      requireApiToken(headers(authorization), secret);
      return 'ok';
    } catch (err) {
      return err instanceof HttpError ? `${err.status} ${err.code}` : 'threw';
    }
  };
  it.each([
    { authorization: 'Bearer s3cret-value', secret: 's3cret-value', want: 'ok' },
    { authorization: 'bearer s3cret-value', secret: 's3cret-value', want: 'ok' },
    { authorization: 'Bearer  s3cret-value  ', secret: 's3cret-value', want: 'ok' },
    { authorization: 'Bearer s3cret-valuE', secret: 's3cret-value', want: '401 unauthorized' },
    { authorization: 'Bearer s3cret', secret: 's3cret-value', want: '401 unauthorized' },
    { authorization: 's3cret-value', secret: 's3cret-value', want: '401 unauthorized' },
    { authorization: 'Basic czNjcmV0', secret: 's3cret-value', want: '401 unauthorized' },
    { authorization: 'Bearer ', secret: 's3cret-value', want: '401 unauthorized' },
    { authorization: undefined, secret: 's3cret-value', want: '401 unauthorized' },
    { authorization: 'Bearer anything', secret: undefined, want: '503 auth_not_configured' },
    { authorization: undefined, secret: undefined, want: '503 auth_not_configured' },
  ])('$authorization against $secret → $want', ({ authorization, secret, want }) => {
    expect(outcome(authorization, secret)).toBe(want);
  });

  it('reads the bearer and compares secrets of any length', () => {
    expect(bearerToken({ authorization: 'Bearer abc def' })).toBe('abc def');
    expect(bearerToken({})).toBeUndefined();
    expect(sameSecret('a', 'a'.repeat(1000))).toBe(false);
    expect(sameSecret('same', 'same')).toBe(true);
  });
});

describe('HTTP server', () => {
  let database: { url: string; drop: () => Promise<void> };
  let s: Served | undefined;

  beforeEach(async () => {
    database = await freshDatabaseUrl('sqlite');
  });
  afterEach(async () => {
    for (const a of s?.answers ?? []) expect(a.text).not.toContain(API_SECRET);
    await s?.daemon.stop();
    s = undefined;
    await database.drop();
  });

  it('answers an unknown route 404 and a wrong method 405 with Allow, as JSON errors', async () => {
    s = await servedDaemon(database.url);
    const missing = await s.call('GET', '/nothing/here');
    expect(missing.status).toBe(404);
    expect(missing.json()).toEqual({ error: { code: 'not_found', message: 'no route for GET /nothing/here' } });

    const wrong = await s.call('PUT', '/api/v1/tokens');
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('GET, POST');
    expect(wrong.json().error.code).toBe('method_not_allowed');
  });

  it('refuses a body over 1 MiB with 413, declared or streamed', async () => {
    s = await servedDaemon(database.url);
    const big = JSON.stringify({ provider: 'x', tokens: ['a'.repeat(1024 * 1024)] });
    const declared = await s.call('POST', '/api/v1/tokens', { body: big });
    expect(declared.status).toBe(413);
    expect(declared.json().error.code).toBe('body_too_large');

    // Chunked, with no Content-Length: the limit holds while reading.
    const streamed = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(`${s!.base}/api/v1/tokens`, {
        method: 'POST',
        headers: { authorization: `Bearer ${API_SECRET}`, 'content-type': 'application/json' },
      });
      req.on('response', (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      });
      req.on('error', reject);
      for (let i = 0; i < 20; i++) req.write('x'.repeat(64 * 1024));
      req.end();
    });
    expect(streamed.status).toBe(413);
    expect(JSON.parse(streamed.body).error.code).toBe('body_too_large');

    // A body just under the limit is read (and then judged on its content).
    const fits = await s.call('POST', '/api/v1/tokens', { body: JSON.stringify({ provider: 'x', tokens: ['a'.repeat(1000)] }) });
    expect(fits.status).toBe(400);
  });

  it('with no secret configured: protected routes answer 503 naming the variables, /healthz stays open, start-up warns', async () => {
    s = await servedDaemon(database.url, { UserAuthorization: '' });
    for (const [method, path] of [
      ['POST', '/api/LLM_TokenCheck/Check/deep'],
      ['GET', '/api/v1/providers'],
      ['GET', '/metrics'],
    ] as const) {
      const a = await s.call(method, path);
      expect(a.status).toBe(503);
      expect(a.json().error).toEqual({
        code: 'auth_not_configured',
        message: 'this route is disabled until an API secret is set: set UserAuthorization or TSCHK_API_TOKEN',
      });
    }
    expect((await s.call('GET', '/healthz', { auth: null })).status).toBe(200);
    expect(s.log.entries().some((e) => e.level === 'warn' && String(e.msg).includes('UserAuthorization or TSCHK_API_TOKEN'))).toBe(true);
  });

  it('accepts TSCHK_API_TOKEN as the secret', async () => {
    s = await servedDaemon(database.url, { UserAuthorization: '', TSCHK_API_TOKEN: 'tschk-token-9d8c7b6a' });
    expect((await s.call('GET', '/api/v1/runs', { auth: 'tschk-token-9d8c7b6a' })).status).toBe(200);
    expect((await s.call('GET', '/api/v1/runs')).status).toBe(401);
  });

  it('protects /metrics unless TSCHK_METRICS_PUBLIC is true', async () => {
    s = await servedDaemon(database.url);
    expect((await s.call('GET', '/metrics', { auth: null })).status).toBe(401);
    expect((await s.call('GET', '/metrics')).status).toBe(200);
    await s.daemon.stop();
    s = await servedDaemon(database.url, { TSCHK_METRICS_PUBLIC: 'true' });
    expect((await s.call('GET', '/metrics', { auth: null })).status).toBe(200);
  });

  it('on close: stops accepting, lets a request in flight finish, then closes', async () => {
    const t = await testDaemon(database.url);
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let entered!: () => void;
    const inHandler = new Promise<void>((r) => (entered = r));
    const slow: Route = {
      method: 'GET',
      path: '/slow',
      auth: 'none',
      handler: async () => {
        entered();
        await released;
        return reply(200, { done: true });
      },
    };
    const server = await startHttpServer(t.daemon.context, [slow]);
    try {
      const inFlight = fetch(`${server.url}/slow`);
      await inHandler;
      let closed = false;
      const closing = server.close(60_000).then(() => (closed = true));
      await expect(fetch(`${server.url}/slow`)).rejects.toThrow();
      expect(closed).toBe(false);

      release();
      const res = await inFlight;
      expect(res.status).toBe(200);
      expect(res.headers.get('connection')).toBe('close');
      expect(await res.json()).toEqual({ done: true });
      await closing;
      expect(closed).toBe(true);
    } finally {
      release();
      await server.close(0);
      await t.daemon.stop();
    }
  });

  it('names the variables when the port is taken', async () => {
    s = await servedDaemon(database.url);
    const other = await testDaemon(database.url, { TSCHK_HTTP_PORT: String(s.daemon.httpAddress!.port) });
    try {
      await expect(other.daemon.start()).rejects.toThrow(/TSCHK_HTTP_HOST, TSCHK_HTTP_PORT\): EADDRINUSE/);
    } finally {
      await other.daemon.stop();
    }
  });
});
