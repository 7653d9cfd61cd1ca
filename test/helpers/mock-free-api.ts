// A loopback stand-in for a free-api's `POST /token/check`, following
// docs/free-api.md, plus the proxy and network failures a client meets in front of one.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

export type Behaviour =
  | 'live'
  | 'dead'
  | 'auth_failed'
  | 'upstream_error'
  | 'unreachable'
  | 'bad_request'
  | 'html_502'
  | 'http_503'
  | 'not_found'
  | 'rate_limited'
  | 'reset'
  | 'timeout'
  | 'broken_json'
  | 'other_json'
  | 'html_200'
  | { kind: 'envelope'; code: number; message: string }
  | { kind: 'rate_limited'; retryAfterS: number }
  | { kind: 'delay'; ms: number; then: Behaviour }
  /** Answers `then` once `until` settles: a check held in flight for as long as the test wants, on no clock. */
  | { kind: 'held'; until: Promise<unknown>; then: Behaviour };

export interface MockFreeApi {
  baseUrl: string;
  checkUrl: string;
  /** Every POST /token/check, in order; token is '' when the body had no string token. */
  calls: Array<{ token: string; at: number }>;
  /** The most requests in flight at once: for one token, and in all. */
  peak: { perToken: number; total: number };
  setBehaviour(token: string, b: Behaviour): void;
  setDefault(b: Behaviour): void;
  close(): Promise<void>;
}

export const NGINX_502 =
  '<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n';
export const HTML_200 = '<!DOCTYPE html><html><head><title>Welcome</title></head><body><h1>It works!</h1></body></html>';

function envelope(code: number, message: string): string {
  return JSON.stringify({ code, message, data: null });
}

export async function startMockFreeApi(opts?: {
  behaviours?: Record<string, Behaviour>;
  defaultBehaviour?: Behaviour;
}): Promise<MockFreeApi> {
  const behaviours = new Map(Object.entries(opts?.behaviours ?? {}));
  let fallback: Behaviour = opts?.defaultBehaviour ?? 'dead';
  const calls: MockFreeApi['calls'] = [];
  const timers = new Set<NodeJS.Timeout>();
  const inFlight = new Map<string, number>();
  const peak = { perToken: 0, total: 0 };
  let total = 0;

  const send = (res: ServerResponse, status: number, type: string, body: string, headers: Record<string, string> = {}) => {
    if (res.destroyed || res.writableEnded) return;
    res.writeHead(status, { 'Content-Type': type, ...headers }).end(body);
  };
  const json = (res: ServerResponse, body: string) => send(res, 200, 'application/json; charset=utf-8', body);

  const answer = (req: IncomingMessage, res: ServerResponse, b: Behaviour): void => {
    if (typeof b === 'object') {
      switch (b.kind) {
        case 'envelope':
          return json(res, envelope(b.code, b.message));
        case 'rate_limited':
          return send(res, 429, 'text/plain', 'Too Many Requests', { 'Retry-After': String(b.retryAfterS) });
        case 'delay': {
          const t = setTimeout(() => {
            timers.delete(t);
            answer(req, res, b.then);
          }, b.ms);
          timers.add(t);
          return;
        }
        case 'held':
          return void b.until.then(
            () => answer(req, res, b.then),
            () => answer(req, res, b.then),
          );
      }
    }
    switch (b) {
      case 'live':
        return json(res, '{"live":true}');
      case 'dead':
        return json(res, '{"live":false}');
      case 'auth_failed':
        return json(res, envelope(-2001, '请求失败: Authorization Failed (invalid token)'));
      case 'upstream_error':
        return json(res, envelope(-2001, '请求失败: 服务暂时不可用'));
      case 'unreachable':
        return json(res, envelope(-1000, 'getaddrinfo ENOTFOUND kimi.moonshot.cn'));
      case 'bad_request':
        return json(res, envelope(-2000, 'Params body.token invalid'));
      case 'html_502':
        return send(res, 502, 'text/html', NGINX_502);
      case 'http_503':
        return send(res, 503, 'text/plain', 'Service Unavailable');
      case 'not_found':
        return send(res, 404, 'text/plain', 'Not Found');
      case 'rate_limited':
        return answer(req, res, { kind: 'rate_limited', retryAfterS: 1 });
      case 'reset':
        req.socket.resetAndDestroy();
        return;
      case 'timeout':
        return; // close() ends the socket
      case 'broken_json':
        return json(res, '{"live": tr');
      case 'other_json':
        return json(res, '{"hello":"world"}');
      case 'html_200':
        return send(res, 200, 'text/html; charset=utf-8', HTML_200);
    }
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method !== 'POST' || path !== '/token/check') {
        // The free-api's framework answers an unknown route with HTTP 200 and a -1000 envelope.
        return json(
          res,
          envelope(-1000, `[请求有误]: 正确请求为 POST -> /token/check, 当前请求为 ${req.method} -> ${path} 请检查请求地址`),
        );
      }
      let token: unknown;
      try {
        token = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { token?: unknown } | null)?.token;
      } catch {
        token = undefined;
      }
      calls.push({ token: typeof token === 'string' ? token : '', at: Date.now() });
      if (typeof token !== 'string') return json(res, envelope(-2000, 'Params body.token invalid'));
      const mine = (inFlight.get(token) ?? 0) + 1;
      inFlight.set(token, mine);
      total++;
      peak.perToken = Math.max(peak.perToken, mine);
      peak.total = Math.max(peak.total, total);
      res.once('close', () => {
        total--;
        inFlight.set(token, inFlight.get(token)! - 1);
      });
      answer(req, res, behaviours.get(token) ?? fallback);
    });
  });

  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  const baseUrl = `http://127.0.0.1:${port}`;
  return {
    baseUrl,
    checkUrl: `${baseUrl}/token/check`,
    calls,
    peak,
    setBehaviour: (token, b) => void behaviours.set(token, b),
    setDefault: (b) => void (fallback = b),
    close: async () => {
      timers.forEach(clearTimeout);
      timers.clear();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
