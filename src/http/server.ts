import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseJson } from '../checkers/http.js';
import type { AppContext } from '../daemon.js';
import { metricsRoutes } from '../metrics.js';
import { apiRoutes } from './api.js';
import { databaseFaultReply } from './database-faults.js';
import { requireApiToken } from './auth.js';
import { healthRoutes } from './health.js';
import { legacyRoutes } from './legacy.js';
import { officialRoutes } from './official.js';
import { errorBody, HttpError, matchRoute, type HttpRequest, type Reply, type Route } from './router.js';

/** Every route tschk serves; a new module adds its list here. */
export const ROUTES: readonly Route[] = [...healthRoutes, ...metricsRoutes, ...legacyRoutes, ...officialRoutes, ...apiRoutes];

export const MAX_BODY_BYTES = 1024 * 1024;

export interface HttpServer {
  /** Where the server listens (the real port when TSCHK_HTTP_PORT is 0). */
  host: string;
  port: number;
  /** `http://host:port`, for tests and the start-up log. */
  url: string;
  /**
   * Stops accepting, lets requests in flight finish (their connections then close), closes idle
   * keep-alive connections; after `graceMs` the remaining connections are cut.
   */
  close(graceMs: number): Promise<void>;
}

export async function startHttpServer(app: AppContext, routes: readonly Route[] = ROUTES): Promise<HttpServer> {
  const { config, logger } = app;
  const log = logger.child({ area: 'http' });
  let closing = false;

  const server: Server = createServer((req, res) => {
    void handle(req, res).catch((err) => {
      log.error({ err: err instanceof Error ? err.message : String(err) }, 'answer failed');
      res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const began = performance.now();
    let routeName = '(none)';
    let answer: Reply;
    try {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const path = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, '') : url.pathname;
      const match = matchRoute(routes, req.method ?? 'GET', path);
      if (match.kind === 'not_found') throw new HttpError(404, 'not_found', `no route for ${req.method} ${path}`);
      if (match.kind === 'wrong_method') {
        throw new HttpError(405, 'method_not_allowed', `${req.method} is not allowed here; use ${match.allow.join(' or ')}`, {
          Allow: match.allow.join(', '),
        });
      }
      const { route, params } = match;
      routeName = `${route.method} ${route.path}`;
      if (route.auth === 'bearer' || (route.auth === 'metrics' && !config.http.metricsPublic)) {
        requireApiToken(req.headers, config.http.apiToken);
      }
      const body = await readBody(req);
      const aborted = new AbortController();
      res.once('close', () => {
        if (!res.writableFinished) aborted.abort();
      });
      const request: HttpRequest = {
        method: req.method ?? 'GET',
        path,
        query: url.searchParams,
        params,
        headers: req.headers,
        body,
        json: () => jsonBody(body),
        signal: aborted.signal,
      };
      answer = await route.handler(request, app);
    } catch (err) {
      answer = databaseFaultReply(app.db.dialect.name, err, log) ?? errorReply(err, log);
    }
    send(res, answer, closing);
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

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw tooLarge();
    chunks.push(chunk);
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
  return json;
}

function errorReply(err: unknown, log: AppContext['logger']): Reply {
  if (err instanceof HttpError) return { status: err.status, json: errorBody(err.code, err.message), headers: err.headers };
  log.error({ err: err instanceof Error ? err.message : String(err) }, 'route failed');
  return { status: 500, json: errorBody('internal_error', 'internal error; the daemon log has the details') };
}

function send(res: ServerResponse, answer: Reply, closing: boolean): void {
  if (res.destroyed || res.headersSent) return;
  const isJson = answer.json !== undefined || answer.text === undefined;
  const body = isJson ? JSON.stringify(answer.json ?? null) : answer.text!;
  const headers: Record<string, string | number> = {
    'Content-Type': isJson ? 'application/json; charset=utf-8' : (answer.contentType ?? 'text/plain; charset=utf-8'),
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
    ...answer.headers,
  };
  // During shutdown every answer closes its connection, so keep-alive sockets drain away.
  if (closing) headers.Connection = 'close';
  res.writeHead(answer.status, headers).end(body);
}
