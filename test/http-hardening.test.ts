// Slow and ambiguous clients: request timeouts, connections closed after a refusal, repeated
// credential headers, exact request targets. Timeouts are set small through the server options,
// so that no test waits on the clock for long.
import { Agent, request } from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { refuseRepeatedCredentials } from '../src/http/auth.js';
import { HttpError, reply, splitTarget, type Route } from '../src/http/router.js';
import { HTTP_TIMEOUTS, ROUTES, startHttpServer, type HttpServer } from '../src/http/server.js';
import { freshDatabaseUrl } from './helpers/databases.js';
import { testDaemon } from './helpers/daemon.js';
import { API_SECRET, servedDaemon, type Served } from './helpers/http.js';
import { rawCall, slowClient, type RawAnswer, type SlowClient } from './helpers/raw-http.js';

const AUTH = `Authorization: Bearer ${API_SECRET}`;

/** What the server wrote before it closed the connection; fails instead of waiting out the test timeout. */
async function closedByServer(c: SlowClient, withinMs = 5000): Promise<RawAnswer> {
  let timer: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the server kept the connection open for ${withinMs} ms`)), withinMs);
  });
  try {
    return await Promise.race([c.closed, gaveUp]);
  } finally {
    clearTimeout(timer);
    c.destroy();
  }
}

/** Writes `piece` every `everyMs` until the connection closes: a client that never finishes. */
function trickle(c: SlowClient, piece: string, everyMs: number): () => void {
  const timer = setInterval(() => c.write(piece), everyMs);
  const stop = () => clearInterval(timer);
  c.socket.once('close', stop);
  return stop;
}

describe('splitTarget', () => {
  it.each([
    { target: '/api/v1/tokens?limit=2', want: { path: '/api/v1/tokens', query: 'limit=2' } },
    { target: '/api/v1/tokens/', want: { path: '/api/v1/tokens', query: '' } },
    { target: '/', want: { path: '/', query: '' } },
    { target: '/healthz/../api/v1/tokens', want: { path: '/healthz/../api/v1/tokens', query: '' } },
    { target: '//evil.example/api/v1/tokens', want: { path: '//evil.example/api/v1/tokens', query: '' } },
    { target: '/a%2F..%2Fb#frag', want: { path: '/a%2F..%2Fb', query: '' } },
    { target: 'http://127.0.0.1:3000/api/v1/tokens?x=1', want: { path: '/api/v1/tokens', query: 'x=1' } },
    { target: 'HTTP://host', want: { path: '/', query: '' } },
    { target: 'http://host?x=1', want: { path: '/', query: 'x=1' } },
    { target: 'http://[::1', want: undefined },
    { target: 'http://[::1/api/v1/tokens', want: undefined },
    { target: 'http:///api/v1/tokens', want: undefined },
    { target: '*', want: undefined },
    { target: 'api/v1/tokens', want: undefined },
    { target: '', want: undefined },
  ])('$target', ({ target, want }) => {
    expect(splitTarget(target)).toEqual(want);
  });
});

describe('refuseRepeatedCredentials', () => {
  const outcome = (headers: Record<string, string[]>) => {
    try {
      refuseRepeatedCredentials(headers);
      return 'ok';
    } catch (err) {
      return err instanceof HttpError ? `${err.status} ${err.message}` : 'threw';
    }
  };
  it.each([
    { headers: {}, want: 'ok' },
    { headers: { authorization: ['Bearer a'] }, want: 'ok' },
    { headers: { authorization: ['Bearer a'], userauthorization: ['b'] }, want: 'ok' },
    { headers: { authorization: ['Bearer a', 'Bearer b'] }, want: '400 send one Authorization header; this request has 2' },
    { headers: { userauthorization: ['a', 'a', 'a'] }, want: '400 send one UserAuthorization header; this request has 3' },
  ] as Array<{ headers: Record<string, string[]>; want: string }>)('$headers → $want', ({ headers, want }) => {
    expect(outcome(headers)).toBe(want);
  });
});

describe('slow clients', () => {
  let database: { url: string; drop: () => Promise<void> };
  let t: Awaited<ReturnType<typeof testDaemon>>;
  let server: HttpServer | undefined;
  const clients: SlowClient[] = [];

  const slow = async () => {
    const c = await slowClient(server!.port);
    clients.push(c);
    return c;
  };

  beforeEach(async () => {
    database = await freshDatabaseUrl('sqlite');
    t = await testDaemon(database.url, { UserAuthorization: API_SECRET });
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.destroy();
    await server?.close(0);
    server = undefined;
    await t.daemon.stop();
    await database.drop();
  });

  it('serves with the documented limits unless told otherwise', async () => {
    server = await startHttpServer(t.daemon.context);
    expect(server.timeouts).toEqual({ headersTimeoutMs: 10_000, requestTimeoutMs: 30_000 });
    expect(HTTP_TIMEOUTS).toEqual(server.timeouts);
  });

  it('answers 408 and closes when an authenticated body comes too slowly', async () => {
    server = await startHttpServer(t.daemon.context, ROUTES, { headersTimeoutMs: 40, requestTimeoutMs: 80 });
    const c = await slow();
    c.write(
      `POST /api/v1/tokens HTTP/1.1\r\nHost: x\r\n${AUTH}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"provider"`,
    );
    const stop = trickle(c, ' ', 20);

    const a = await closedByServer(c);

    stop();
    expect(a.status).toBe(408);
    expect(a.headers.connection).toBe('close');
    expect(a.json()).toEqual({
      error: { code: 'request_timeout', message: 'the request did not arrive in time; send it whole, without pauses' },
    });
  });

  it('answers 408 and closes when the headers come too slowly', async () => {
    server = await startHttpServer(t.daemon.context, ROUTES, { headersTimeoutMs: 40, requestTimeoutMs: 80 });
    const c = await slow();
    c.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
    const stop = trickle(c, 'X-Slow: 1\r\n', 20);

    const a = await closedByServer(c);

    stop();
    expect(a.status).toBe(408);
    expect(a.json().error.code).toBe('request_timeout');
  });

  it('closes a connection that never sends a request', async () => {
    server = await startHttpServer(t.daemon.context, ROUTES, { headersTimeoutMs: 40, requestTimeoutMs: 80 });
    const c = await slow();

    const a = await closedByServer(c);

    expect(a.status).toBe(408);
  });

  it('does not count the time the answer takes: a slow check still answers', async () => {
    let inHandler = () => {};
    const handling = new Promise<void>((r) => (inHandler = r));
    let finish = () => {};
    const finished = new Promise<void>((r) => (finish = r));
    const slowRoute: Route = {
      method: 'POST',
      path: '/slow',
      auth: 'none',
      handler: async () => {
        inHandler();
        await finished;
        return reply(200, { done: true });
      },
    };
    server = await startHttpServer(t.daemon.context, [slowRoute], { headersTimeoutMs: 100, requestTimeoutMs: 100 });

    const answer = fetch(`${server.url}/slow`, { method: 'POST', body: '{}' });
    expect(await Promise.race([handling.then(() => 'in the handler'), answer.then((r) => `answered ${r.status} first`)])).toBe(
      'in the handler',
    );
    // A connection opened after it is timed out first: the slow answer has outlived the timeout by then.
    const later = await closedByServer(await slow());
    finish();
    const res = await answer;

    expect(later.status).toBe(408);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ done: true });
  });

  it('answers headers over 16 KiB with a JSON 431 and closes', async () => {
    server = await startHttpServer(t.daemon.context);
    const c = await slow();
    c.write(`GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${'x'.repeat(20_000)}\r\n\r\n`);

    const a = await closedByServer(c);

    expect(a.status).toBe(431);
    expect(a.json().error.code).toBe('headers_too_large');
  });

  it('answers a malformed request with a JSON 400 and closes', async () => {
    server = await startHttpServer(t.daemon.context);
    const c = await slow();
    c.write('GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n');

    const a = await closedByServer(c);

    expect(a.status).toBe(400);
    expect(a.headers.connection).toBe('close');
    expect(a.json().error.code).toBe('bad_request');
  });
});

describe('refusals close the connection', () => {
  let database: { url: string; drop: () => Promise<void> };
  let s: Served;
  const clients: SlowClient[] = [];
  const slow = async () => {
    const c = await slowClient(s.daemon.httpAddress!.port);
    clients.push(c);
    return c;
  };

  beforeEach(async () => {
    database = await freshDatabaseUrl('sqlite');
    // The daemon's own limits (30 s): a connection that closes here closed because of the refusal.
    s = await servedDaemon(database.url);
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) {
      expect(c.isClosed()).toBe(true);
      c.destroy();
    }
    for (const a of s.answers) expect(a.text).not.toContain(API_SECRET);
    await s.daemon.stop();
    await database.drop();
  });

  it.each([
    { name: 'no credentials', auth: '', status: 401 },
    { name: 'wrong credentials', auth: 'Authorization: Bearer wrong\r\n', status: 401 },
    { name: 'a declared body over 1 MiB', auth: `${AUTH}\r\n`, length: 2 * 1024 * 1024, status: 413 },
  ])('$name, with the body still coming → $status at once, then the connection closes', async ({ auth, status, length }) => {
    const c = await slow();
    c.write(
      `POST /api/v1/tokens HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: ${length ?? 100_000}\r\n\r\n{"provider":`,
    );

    const a = await closedByServer(c);

    expect(a.status).toBe(status);
    expect(a.headers.connection).toBe('close');
    expect(a.json().error.code).toEqual(expect.any(String));
  });

  it('an unknown route with a body still coming → 404, then the connection closes', async () => {
    const c = await slow();
    c.write(`POST /nothing HTTP/1.1\r\nHost: x\r\n${AUTH}\r\nContent-Length: 100000\r\n\r\nabc`);

    const a = await closedByServer(c);

    expect(a.status).toBe(404);
    expect(a.headers.connection).toBe('close');
  });

  it('a 400 on a body read whole closes the connection too', async () => {
    const a = await s.call('POST', '/api/v1/tokens', { body: '{"provider":' });

    expect(a.status).toBe(400);
    expect(a.headers.get('connection')).toBe('close');
  });

  it('answers that accept keep the connection open for the next request', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const get = (path: string) =>
      new Promise<{ status: number; reused: boolean; connection: string | undefined }>((resolve, reject) => {
        const req = request(`${s.base}${path}`, { agent, headers: { authorization: `Bearer ${API_SECRET}` } }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode!, reused: req.reusedSocket, connection: res.headers.connection }));
        });
        req.on('error', reject);
        req.end();
      });
    try {
      const first = await get('/api/v1/tokens');
      const second = await get('/nothing/here');
      const third = await get('/healthz');
      expect([first.status, second.status, third.status]).toEqual([200, 404, 200]);
      expect([first.reused, second.reused, third.reused]).toEqual([false, true, true]);
      expect(third.connection).toBe('keep-alive');
    } finally {
      agent.destroy();
    }
  });
});

describe('repeated credential headers', () => {
  let database: { url: string; drop: () => Promise<void> };
  let s: Served;
  let port: number;
  const answers: RawAnswer[] = [];
  const call = async (target: string, headers: Array<[string, string]>, method = 'GET') => {
    const a = await rawCall(port, { method, target, headers });
    answers.push(a);
    return a;
  };

  beforeEach(async () => {
    database = await freshDatabaseUrl('sqlite');
    // /deep/single forwards its bearer: should a request get through, it goes nowhere.
    s = await servedDaemon(database.url, { TSCHK_DEEPSEEK_PLATFORM_URL: 'http://127.0.0.1:9' });
    port = s.daemon.httpAddress!.port;
  });
  afterEach(async () => {
    for (const a of answers.splice(0)) expect(a.raw).not.toContain(API_SECRET);
    await s.daemon.stop();
    await database.drop();
  });

  it.each([
    {
      name: 'two Authorization headers, the first right',
      headers: [
        ['Authorization', `Bearer ${API_SECRET}`],
        ['Authorization', 'Bearer other'],
      ],
    },
    {
      name: 'two Authorization headers, the second right',
      headers: [
        ['Authorization', 'Bearer other'],
        ['Authorization', `Bearer ${API_SECRET}`],
      ],
    },
    {
      name: 'the same Authorization twice',
      headers: [
        ['Authorization', `Bearer ${API_SECRET}`],
        ['authorization', `Bearer ${API_SECRET}`],
      ],
    },
    {
      name: 'two UserAuthorization headers',
      headers: [
        ['Authorization', `Bearer ${API_SECRET}`],
        ['UserAuthorization', 'a'],
        ['UserAuthorization', 'b'],
      ],
    },
  ] as Array<{ name: string; headers: Array<[string, string]> }>)(
    '$name → 400 on every route, and the connection closes',
    async ({ headers }) => {
      for (const [method, target] of [
        ['GET', '/api/v1/tokens'],
        ['POST', '/api/LLM_TokenCheck/Check/deep'],
        ['GET', '/api/OfficialTokenCheck/Check/deep/single'],
        ['GET', '/healthz'],
      ] as const) {
        const a = await call(target, headers, method);
        expect(a.status, `${method} ${target}`).toBe(400);
        expect(a.headers.connection).toBe('close');
        expect(a.json().error).toEqual({
          code: 'bad_request',
          message: expect.stringMatching(/^send one (User)?Authorization header; this request has 2$/),
        });
      }
    },
  );

  it('one Authorization header is answered as before', async () => {
    expect((await call('/api/v1/tokens', [['Authorization', `Bearer ${API_SECRET}`]])).status).toBe(200);
    expect(
      (
        await call('/api/v1/tokens', [
          ['Authorization', `Bearer ${API_SECRET}`],
          ['UserAuthorization', 'x'],
        ])
      ).status,
    ).toBe(200);
  });
});
