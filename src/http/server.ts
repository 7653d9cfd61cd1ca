import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { parseJson } from '../checkers/http.js';
import type { HttpContext } from '../context.js';
import { metricsRoutes } from '../metrics.js';
import { consoleRoutes } from '../console/routes.js';
import { apiRoutes } from './api.js';
import { databaseFaultReply } from './database-faults.js';
import { refuseRepeatedCredentials, requireApiToken } from './auth.js';
import { healthRoutes } from './health.js';
import { legacyRoutes } from './legacy.js';
import { officialRoutes } from './official.js';
import { hasNul, nulPath, quote } from '../validation.js';
import { errorBody, HttpError, matchRoute, splitTarget, type HttpRequest, type Reply, type Route } from './router.js';

/** Every route tschk serves; a new module adds its list here. */
export const ROUTES: readonly Route[] = [
  ...healthRoutes,
  ...metricsRoutes,
  ...legacyRoutes,
  ...officialRoutes,
  ...apiRoutes,
  ...consoleRoutes,
];

export const MAX_BODY_BYTES = 1024 * 1024;

export interface HttpServerOptions {
  /** How long a client may take to send a request's headers; then 408 and the connection closes. */
  headersTimeoutMs?: number;
  /**
   * How long a client may take to send a whole request, body included; then 408 and the
   * connection closes. The time the answer takes (a legacy check may take minutes) does not count.
   */
  requestTimeoutMs?: number;
}

/** Long enough for a slow link to send 1 MiB, short enough that slow clients do not pile up. */
export const HTTP_TIMEOUTS = { headersTimeoutMs: 10_000, requestTimeoutMs: 30_000 } as const;

/** Answers that refuse the request: the connection closes after them, rather than wait on the client. */
const REFUSALS = new Set([400, 401, 413]);

export interface HttpServer {
  /** Where the server listens (the real port when TSCHK_HTTP_PORT is 0). */
  host: string;
  port: number;
  /** `http://host:port`, for tests and the start-up log. */
  url: string;
  /** The limits Node enforces on slow clients, as set. */
  timeouts: Required<HttpServerOptions>;
  /**
   * Stops accepting, lets requests in flight finish (their connections then close), closes idle
   * keep-alive connections; after `graceMs` the remaining connections are cut.
   */
  close(graceMs: number): Promise<void>;
}

export async function startHttpServer(
  app: HttpContext,
  routes: readonly Route[] = ROUTES,
  options: HttpServerOptions = {},
): Promise<HttpServer> {
  const { config, logger } = app;
  const log = logger.child({ area: 'http' });
  let closing = false;
  const requestTimeout = options.requestTimeoutMs ?? HTTP_TIMEOUTS.requestTimeoutMs;
  const headersTimeout = Math.min(options.headersTimeoutMs ?? HTTP_TIMEOUTS.headersTimeoutMs, requestTimeout);

  const server: Server = createServer(
    {
      requestTimeout,
      headersTimeout,
      // Node looks for expired requests this often (30 s by default, which would double the limits).
      connectionsCheckingInterval: Math.max(10, Math.min(1000, Math.floor(headersTimeout / 4) || 1000)),
    },
    (req, res) => {
      void handle(req, res).catch((err) => {
        log.error({ err: err instanceof Error ? err.message : String(err) }, 'answer failed');
        res.destroy();
      });
    },
  );
  // Requests Node itself refuses (too slow, headers too large, not HTTP) get a JSON error too.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => refuseMalformed(err, socket, log));

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const began = performance.now();
    let routeName = '(none)';
    let answer: Reply;
    try {
      const target = splitTarget(req.url ?? '');
      if (!target) {
        throw new HttpError(400, 'bad_request', `the request target must be a path such as /api/v1/tokens; got ${quote(req.url ?? '')}`);
      }
      const { path } = target;
      const match = matchRoute(routes, req.method ?? 'GET', path);
      if (match.kind === 'not_found') {
        throw new HttpError(404, 'not_found', `no route for ${req.method} ${path.length > 200 ? `${path.slice(0, 200)}…` : path}`);
      }
      if (match.kind === 'wrong_method') {
        throw new HttpError(405, 'method_not_allowed', `${req.method} is not allowed here; use ${match.allow.join(' or ')}`, {
          Allow: match.allow.join(', '),
        });
      }
      const { route, params } = match;
      routeName = `${route.method} ${route.path}`;
      refuseRepeatedCredentials(req.headersDistinct);
      if (route.auth === 'bearer' || (route.auth === 'metrics' && !config.http.metricsPublic)) {
        requireApiToken(req.headers, config.http.apiToken);
      }
      const query = queryOf(target.query);
      const body = await readBody(req);
      const aborted = new AbortController();
      res.once('close', () => {
        if (!res.writableFinished) aborted.abort();
      });
      const request: HttpRequest = {
        method: req.method ?? 'GET',
        path,
        query,
        params,
        headers: req.headers,
        body,
        json: () => jsonBody(body),
        signal: aborted.signal,
        remoteAddress: req.socket.remoteAddress ?? '',
      };
      answer = await route.handler(request, app);
    } catch (err) {
      answer = databaseFaultReply(app.db.dialect.name, err, log) ?? errorReply(err, log);
    }
    send(req, res, answer, closing);
    log.debug({ route: routeName, status: answer.status, ms: Math.round(performance.now() - began) }, 'request');
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new Error(
          `cannot listen on ${config.http.host}:${config.http.port} (TSCHK_HTTP_HOST, TSCHK_HTTP_PORT): ${err.code ?? err.message}`,
        ),
      ),
    );
    server.listen(config.http.port, config.http.host, resolve);
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;

  let closed: Promise<void> | undefined;
  return {
    host: address.address,
    port: address.port,
    url: `http://${host}:${address.port}`,
    timeouts: { headersTimeoutMs: server.headersTimeout, requestTimeoutMs: server.requestTimeout },
    close: (graceMs) =>
      (closed ??= new Promise<void>((resolve) => {
        closing = true;
        const timer = setTimeout(() => {
          log.warn({ graceMs }, 'grace period over: cutting HTTP connections still open');
          server.closeAllConnections();
        }, graceMs);
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        server.closeIdleConnections();
      })),
  };
}

/** The query string's parameters; a NUL in any of them is a 400 (PostgreSQL refuses NUL in text). */
function queryOf(raw: string): URLSearchParams {
  const query = new URLSearchParams(raw);
  for (const [name, value] of query) {
    if (hasNul(name)) throw new HttpError(400, 'bad_request', 'a query parameter name must not contain a NUL character (\\u0000)');
    if (hasNul(value)) {
      throw new HttpError(400, 'bad_request', `the query parameter ${quote(name, 40)} must not contain a NUL character (\\u0000)`);
    }
  }
  return query;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) throw tooLarge();
      chunks.push(chunk);
    }
  } catch (err) {
    if (err instanceof HttpError) throw err;
    // The client went away (or was cut off for being slow) mid-body: nobody is left to answer.
    throw new HttpError(400, 'bad_request', 'the request body was cut off before its end');
  }
  return Buffer.concat(chunks);
}

function tooLarge(): HttpError {
  return new HttpError(413, 'body_too_large', `request body over ${MAX_BODY_BYTES} bytes (1 MiB)`, { Connection: 'close' });
}

function jsonBody(body: Buffer): unknown {
  if (body.length === 0) throw new HttpError(400, 'bad_json', 'expected a JSON body; none was sent');
  const json = parseJson(body.toString('utf8'));
  if (json === undefined) throw new HttpError(400, 'bad_json', 'the body is not valid JSON');
  const nul = nulPath(json);
  if (nul !== undefined) throw new HttpError(400, 'bad_request', `${nul} must not contain a NUL character (\\u0000)`);
  return json;
}

/**
 * Answers a request Node refused before it reached a route: 408 when its headers or body came too
 * slowly, 431 when its headers are too large, 400 when it is not HTTP. The connection then closes.
 */
function refuseMalformed(err: NodeJS.ErrnoException, socket: Socket, log: HttpContext['logger']): void {
  const status = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
  // An answer already under way on this connection must not get a second one spliced in.
  const inFlight = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (err.code !== 'ECONNRESET' && socket.writable && !inFlight?.headersSent) {
    const [code, message] =
      status === 408
        ? ['request_timeout', 'the request did not arrive in time; send it whole, without pauses']
        : status === 431
          ? ['headers_too_large', 'the request headers are too large']
          : ['bad_request', 'the request is not well-formed HTTP/1.1'];
    const body = JSON.stringify(errorBody(code, message));
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
        'Content-Type: application/json; charset=utf-8\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        'Cache-Control: no-store\r\nConnection: close\r\n\r\n' +
        body,
    );
    socket.destroySoon();
  } else {
    socket.destroy();
  }
  log.debug({ code: err.code, status }, 'request refused before routing');
}

function errorReply(err: unknown, log: HttpContext['logger']): Reply {
  if (err instanceof HttpError) return { status: err.status, json: errorBody(err.code, err.message), headers: err.headers };
  log.error({ err: err instanceof Error ? err.message : String(err) }, 'route failed');
  return { status: 500, json: errorBody('internal_error', 'internal error; the daemon log has the details') };
}

function send(req: IncomingMessage, res: ServerResponse, answer: Reply, closing: boolean): void {
  if (res.destroyed || res.headersSent || !res.socket?.writable) return;
  const isJson = answer.json !== undefined || answer.text === undefined;
  const body = isJson ? JSON.stringify(answer.json ?? null) : answer.text!;
  const headers: Record<string, string | number> = {
    'Content-Type': isJson ? 'application/json; charset=utf-8' : (answer.contentType ?? 'text/plain; charset=utf-8'),
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
    ...answer.headers,
  };
  // During shutdown every answer closes its connection, so keep-alive sockets drain away. A
  // refusal closes too, and so does an answer given before the body was read: else Node would
  // keep reading that body, for as long as the client cares to send it.
  const bodyUnread = !req.complete && (req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0);
  if (closing || REFUSALS.has(answer.status) || bodyUnread) headers.Connection = 'close';
  res.writeHead(answer.status, headers).end(body);
}
