import type { IncomingHttpHeaders } from 'node:http';
import type { HttpContext } from '../context.js';

/**
 * The routing vocabulary every HTTP module uses. A module exports `Route[]`; `server.ts`
 * concatenates them. A handler gets the parsed request and the daemon's context and returns a
 * `Reply`, or throws `HttpError` for an expected failure (anything else becomes a 500).
 */
export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface Route {
  method: Method;
  /** Literal segments and `{name}` placeholders, e.g. `/api/v1/tokens/{id}/history`. */
  path: string;
  /**
   * `bearer`: `Authorization: Bearer <UserAuthorization | TSCHK_API_TOKEN>` is checked before the
   * handler runs. `none`: open (a handler may read the caller's own bearer with `bearerToken`).
   * `metrics`: like `bearer` unless TSCHK_METRICS_PUBLIC is true.
   */
  auth: 'bearer' | 'none' | 'metrics';
  handler: Handler;
}

export type Handler = (req: HttpRequest, app: HttpContext) => Promise<Reply> | Reply;

export interface HttpRequest {
  method: string;
  /** The path as sent (nothing decoded or resolved), without query string and trailing slash. */
  path: string;
  /** No name or value holds a NUL character (the server answers 400 first). */
  query: URLSearchParams;
  /** Values of the route's `{name}` placeholders, percent-decoded; never empty, `.`, `..`, nor holding `/`, `\` or NUL. */
  params: Record<string, string>;
  headers: IncomingHttpHeaders;
  /** The raw body (at most 1 MiB; empty when none was sent). */
  body: Buffer;
  /** The body as JSON; throws a 400 HttpError when it is missing, not JSON, or holds a NUL character in any string. */
  json(): unknown;
  /** Aborted when the client goes away before the answer is sent. */
  signal: AbortSignal;
  /** The peer's address as the socket saw it (a proxy's, behind one). */
  remoteAddress: string;
}

export interface Reply {
  status: number;
  /** Serialised with JSON.stringify (compact), sent as application/json; charset=utf-8. */
  json?: unknown;
  /** Sent as is with `contentType`, when `json` is not given. */
  text?: string;
  contentType?: string;
  headers?: Record<string, string>;
}

export const reply = (status: number, json: unknown, headers?: Record<string, string>): Reply => ({ status, json, headers });

/** An expected failure: answered as `{"error": {"code", "message"}}` with this status. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export const errorBody = (code: string, message: string) => ({ error: { code, message } });

export type RouteMatch =
  { kind: 'found'; route: Route; params: Record<string, string> } | { kind: 'wrong_method'; allow: Method[] } | { kind: 'not_found' };

/**
 * The path and the query of a request target, exactly as sent (no `..` resolved, nothing
 * decoded), without a fragment and without one trailing slash; undefined for a target that is
 * neither origin-form (`/path?query`) nor a well-formed absolute-form (`http://host/path?query`,
 * which RFC 9112 asks servers to accept).
 */
export function splitTarget(target: string): { path: string; query: string } | undefined {
  let rest = target.split('#')[0]!;
  const absolute = /^(https?):\/\/([^/?]*)/i.exec(rest);
  if (absolute) {
    try {
      new URL(`${absolute[1]}://${absolute[2]}`);
    } catch {
      return undefined;
    }
    if (absolute[2] === '') return undefined;
    rest = rest.slice(absolute[0].length);
    if (!rest.startsWith('/')) rest = `/${rest}`;
  }
  if (!rest.startsWith('/')) return undefined;
  const q = rest.indexOf('?');
  let path = q < 0 ? rest : rest.slice(0, q);
  if (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
  return { path, query: q < 0 ? '' : rest.slice(q + 1) };
}

/**
 * Finds the route for a method and path. The path matches segment for segment, as sent: `//x`,
 * `.` and `..` are segments like any other, so they match no route. Literal segments compare
 * case-insensitively, as the original ASP.NET service did (`/api/llm_tokencheck/check/deep`
 * reached it too).
 */
export function matchRoute(routes: readonly Route[], method: string, path: string): RouteMatch {
  const segments = splitPath(path);
  const allow = new Set<Method>();
  for (const route of routes) {
    const params = matchPath(route.path, segments);
    if (!params) continue;
    if (route.method === method) return { kind: 'found', route, params };
    allow.add(route.method);
  }
  return allow.size > 0 ? { kind: 'wrong_method', allow: [...allow] } : { kind: 'not_found' };
}

/** Every segment after the leading slash, empty ones included. */
function splitPath(path: string): string[] {
  return path.split('/').slice(1);
}

/**
 * A placeholder's value once decoded: empty, `.`, `..`, or holding a slash, a backslash or a NUL,
 * it would name another path or nothing at all, so the route does not match.
 */
function plainSegment(value: string): boolean {
  return value !== '' && value !== '.' && value !== '..' && !/[/\\]/.test(value) && !value.includes('\0');
}

function matchPath(pattern: string, segments: string[]): Record<string, string> | undefined {
  const parts = splitPath(pattern);
  if (parts.length !== segments.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    const seg = segments[i]!;
    const name = /^\{(\w+)\}$/.exec(part)?.[1];
    if (name !== undefined) {
      let value: string;
      try {
        value = decodeURIComponent(seg);
      } catch {
        return undefined;
      }
      if (!plainSegment(value)) return undefined;
      params[name] = value;
    } else if (part.toLowerCase() !== seg.toLowerCase()) {
      return undefined;
    }
  }
  return params;
}
