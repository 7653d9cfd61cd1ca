import type { HttpContext } from '../context.js';
import { findArchiveEntry } from '../db/archive.js';
import { findProvider, type Provider } from '../db/providers.js';
import type { Verdict } from '../db/schema.js';
import type { TokenMatch } from '../db/tokens.js';
import { API_TOKEN_VARIABLES, sameSecret } from '../http/auth.js';
import { importIntoPool, removeMatching, removeToken, restoreToken, startRun } from '../http/operations.js';
import { errorBody, HttpError, type Handler, type HttpRequest, type Reply, type Route } from '../http/router.js';
import { parseTokenLines } from '../secret.js';
import { LIMITS, NAME_PATTERN, TOKEN_STATES, parseId, quote, textProblem } from '../validation.js';
import { assets, modules } from './assets.js';
import {
  archivePage,
  countMatching,
  heldPruning,
  overview,
  overviewTrend,
  poolPage,
  poolReasons,
  runDetail,
  runList,
  TOKEN_SORTS,
  tokenPage,
} from './queries.js';
import {
  cameOverHttps,
  clientOf,
  createSession,
  endSession,
  findSession,
  sameToken,
  sessionCookie,
  sessionCookieHeader,
  SignInThrottle,
  type Session,
} from './session.js';

/**
 * The web console: pages at `/`, their files at `/assets/…`, and the JSON they read and write at
 * `/console/api/…`. Those answer a signed-in browser only (a session cookie), and a change only
 * with the CSRF token of that session in `X-CSRF-Token` from the same origin. `/api/v1` never
 * looks at the cookie: scripts keep using the bearer.
 */

/** No inline script or style, nothing from another origin, never inside a frame. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy': CONTENT_SECURITY_POLICY,
  'X-Frame-Options': 'DENY',
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'same-origin',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Permissions-Policy': 'camera=(), microphone=(), geolocation=(), payment=()',
};

export type Language = 'en' | 'zh-CN';

/** The console's language for an Accept-Language header: Chinese when it comes before English, else English. */
export function pickLanguage(header: string | undefined): Language {
  const ranked = (header ?? '')
    .split(',')
    .map((part, i) => {
      const [tag = '', ...params] = part.trim().split(';');
      const q = params.map((p) => /^\s*q=([\d.]+)\s*$/.exec(p)?.[1]).find((v) => v !== undefined);
      return { tag: tag.trim().toLowerCase(), q: q === undefined ? 1 : Number(q), i };
    })
    .filter((l) => l.tag !== '' && l.q > 0)
    .sort((a, b) => b.q - a.q || a.i - b.i);
  for (const l of ranked) {
    if (l.tag === 'zh' || l.tag.startsWith('zh-')) return 'zh-CN';
    if (l.tag === 'en' || l.tag.startsWith('en-')) return 'en';
  }
  return 'en';
}

const withHeaders = (r: Reply): Reply => ({ ...r, headers: { ...SECURITY_HEADERS, ...r.headers } });
const json = (status: number, body: unknown, headers?: Record<string, string>): Reply => withHeaders({ status, json: body, headers });
const badRequest = (message: string) => new HttpError(400, 'bad_request', message);

const throttles = new WeakMap<HttpContext, SignInThrottle>();
const throttleOf = (app: HttpContext) => {
  let t = throttles.get(app);
  if (!t) throttles.set(app, (t = new SignInThrottle()));
  return t;
};

/** Errors of the console's routes carry the same headers as its answers. */
function safely(handler: Handler): Handler {
  return async (req, app) => {
    try {
      return withHeaders(await handler(req, app));
    } catch (err) {
      if (err instanceof HttpError) return json(err.status, errorBody(err.code, err.message), err.headers);
      throw err;
    }
  };
}

function secretOf(app: HttpContext): string {
  const secret = app.config.http.apiToken;
  if (secret === undefined) {
    throw new HttpError(503, 'auth_not_configured', `the console is disabled until an API secret is set: set ${API_TOKEN_VARIABLES}`);
  }
  return secret;
}

/**
 * A request from this console's own pages: when the browser says where it comes from (Origin,
 * Sec-Fetch-Site), that must be this origin. Browsers send both on every cross-site POST.
 */
function requireSameOrigin(req: HttpRequest, app: HttpContext): void {
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin') throw new HttpError(403, 'cross_site', 'refused: this request came from another site');
  const origin = req.headers.origin;
  if (origin !== undefined) {
    const scheme = cameOverHttps(req, app.config) ? 'https' : 'http';
    if (origin !== `${scheme}://${req.headers.host ?? ''}`)
      throw new HttpError(403, 'cross_site', 'refused: this request came from another origin');
  }
}

type SessionHandler = (req: HttpRequest, app: HttpContext, session: Session) => Promise<Reply> | Reply;

/** A read for a signed-in browser. */
function reading(handler: SessionHandler): Handler {
  return safely(async (req, app) => {
    const secret = secretOf(app);
    const value = sessionCookie(req.headers);
    const session = value === undefined ? undefined : await findSession(app.db, secret, value);
    if (!session) throw new HttpError(401, 'signed_out', 'sign in first: the session is missing or has expired');
    return handler(req, app, session);
  });
}

/** A change: signed in, same origin, and the session's CSRF token in X-CSRF-Token. */
function changing(handler: SessionHandler): Handler {
  return reading(async (req, app, session) => {
    requireSameOrigin(req, app);
    const sent = req.headers['x-csrf-token'];
    if (typeof sent !== 'string' || !sameToken(sent, session.csrf)) {
      throw new HttpError(403, 'csrf_failed', 'refused: the X-CSRF-Token header is missing or wrong; reload the page');
    }
    return handler(req, app, session);
  });
}

/**
 * Logs what the console changed. What it did to tokens (removed, restored) is also in the event
 * log (`token_events`, actor 'console'), written by the same transaction as the change.
 */
function audit(app: HttpContext, req: HttpRequest, action: string, details: Record<string, unknown>): void {
  app.logger.info({ via: 'console', client: clientOf(req, app.config), action, ...details }, 'console action');
}

function bodyOf(req: HttpRequest, allowed: readonly string[]): Record<string, unknown> {
  if (req.body.length === 0) return {};
  if (!/^application\/json\b/i.test(String(req.headers['content-type'] ?? ''))) {
    throw new HttpError(415, 'unsupported_media_type', 'send the body as application/json');
  }
  const body = req.json();
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badRequest('the body must be a JSON object');
  const extra = Object.keys(body).filter((k) => !allowed.includes(k));
  if (extra.length > 0) throw badRequest(`unknown field ${quote(extra[0]!)}; accepted: ${allowed.join(', ')}`);
  return body as Record<string, unknown>;
}

function text(value: unknown, field: string, max: number): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') throw badRequest(`${field} must be a string`);
  const problem = textProblem(field, value, max);
  if (problem) throw badRequest(problem);
  return value;
}

function oneOf<T extends string>(value: unknown, field: string, values: readonly T[]): T | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string' || !values.includes(value as T)) throw badRequest(`${field} must be one of ${values.join(', ')}`);
  return value as T;
}

function wholeNumber(raw: string | null | undefined, field: string, def: number, min: number, max: number): number {
  if (raw === null || raw === undefined || raw === '') return def;
  if (!/^\d{1,10}$/.test(raw) || Number(raw) < min || Number(raw) > max)
    throw badRequest(`${field} must be a whole number from ${min} to ${max}`);
  return Number(raw);
}

const VERDICTS: ReadonlyArray<Verdict | 'unchecked'> = ['live', 'dead', 'exhausted', 'unknown', 'unchecked'];

/** The table's filter, from the query string or a bulk action's body, in one canonical order. */
function matchOf(get: (name: string) => unknown): TokenMatch {
  const m: TokenMatch = {};
  const state = oneOf(get('state'), 'state', TOKEN_STATES);
  const verdict = oneOf(get('verdict'), 'verdict', VERDICTS);
  const reason = text(get('reason'), 'reason', 64);
  const q = text(get('q'), 'q', 100)?.trim();
  if (state) m.state = state;
  if (verdict) m.verdict = verdict;
  if (reason) m.reason = reason;
  if (q) m.text = q;
  return m;
}

async function providerParam(app: HttpContext, name: string | undefined): Promise<Provider> {
  const p = name === undefined ? undefined : await findProvider(app.db, name);
  if (!p) throw new HttpError(404, 'unknown_provider', `unknown provider ${quote(name ?? '')}`);
  return p;
}

function poolParam(req: HttpRequest): string {
  const pool = req.params.pool!;
  if (!NAME_PATTERN.test(pool)) throw badRequest(`pool must be letters, digits, - and _, at most ${LIMITS.nameChars}`);
  return pool;
}

function idParam(req: HttpRequest): number {
  const id = parseId(req.params.id!);
  if (id === undefined) throw badRequest(`id must be a whole number from 1 to ${LIMITS.maxId}`);
  return id;
}

async function getSession(req: HttpRequest, app: HttpContext): Promise<Reply> {
  const lang = pickLanguage(req.headers['accept-language']);
  const secret = app.config.http.apiToken;
  if (secret === undefined) return json(200, { configured: false, signed_in: false, lang, variables: API_TOKEN_VARIABLES });
  const value = sessionCookie(req.headers);
  const session = value === undefined ? undefined : await findSession(app.db, secret, value);
  if (!session) return json(200, { configured: true, signed_in: false, lang });
  return json(200, { configured: true, signed_in: true, lang, csrf: session.csrf, expires_at: session.expiresAt.toISOString() });
}

async function signIn(req: HttpRequest, app: HttpContext): Promise<Reply> {
  const secret = secretOf(app);
  requireSameOrigin(req, app);
  const client = clientOf(req, app.config);
  const throttle = throttleOf(app);
  const waitMs = throttle.waitMs(client);
  if (waitMs > 0) {
    const seconds = Math.ceil(waitMs / 1000);
    throw new HttpError(429, 'too_many_attempts', `too many wrong secrets from this address: try again in ${seconds} s`, {
      'Retry-After': String(seconds),
    });
  }
  const body = bodyOf(req, ['secret']);
  const given = typeof body.secret === 'string' ? body.secret : '';
  if (given === '' || !sameSecret(given, secret)) {
    throttle.failed(client);
    app.logger.warn({ client }, 'console sign-in refused: wrong secret');
    throw new HttpError(401, 'wrong_secret', `wrong secret: use the value of ${API_TOKEN_VARIABLES}`);
  }
  throttle.succeeded(client);
  const lifetimeMs = app.config.http.consoleSessionMinutes * 60_000;
  const session = await createSession(app.db, secret, client, lifetimeMs);
  app.logger.info({ client, expiresAt: session.expiresAt.toISOString() }, 'console sign-in');
  return json(
    200,
    { signed_in: true, csrf: session.csrf, expires_at: session.expiresAt.toISOString() },
    { 'Set-Cookie': sessionCookieHeader(session.value, lifetimeMs / 1000, cameOverHttps(req, app.config)) },
  );
}

async function signOut(req: HttpRequest, app: HttpContext, session: Session): Promise<Reply> {
  await endSession(app.db, secretOf(app), session.value);
  app.logger.info({ client: clientOf(req, app.config) }, 'console sign-out');
  return json(200, { signed_in: false }, { 'Set-Cookie': sessionCookieHeader('', 0, cameOverHttps(req, app.config)) });
}

async function getPoolTokens(req: HttpRequest, app: HttpContext): Promise<Reply> {
  const provider = await providerParam(app, req.params.provider);
  const pool = poolParam(req);
  const match = matchOf((n) => req.query.get(n));
  const sort = oneOf(req.query.get('sort'), 'sort', TOKEN_SORTS) ?? 'position';
  const dir = oneOf(req.query.get('dir'), 'dir', ['asc', 'desc'] as const) ?? 'asc';
  const size = wholeNumber(req.query.get('size'), 'size', 50, 1, 200);
  const page = wholeNumber(req.query.get('page'), 'page', 1, 1, 1_000_000);
  const result = await poolPage(app.db, {
    providerId: provider.id,
    pool,
    match,
    sort,
    dir,
    offset: (page - 1) * size,
    limit: size,
    strip: 20,
  });
  return json(200, { provider: provider.name, pool, page, size, ...result, reasons: await poolReasons(app.db, provider.id, pool) });
}

async function getMatch(req: HttpRequest, app: HttpContext): Promise<Reply> {
  const provider = await providerParam(app, req.params.provider);
  const pool = poolParam(req);
  return json(200, await countMatching(app.db, { providerId: provider.id, pool, match: matchOf((n) => req.query.get(n)) }));
}

async function postBulk(req: HttpRequest, app: HttpContext): Promise<Reply> {
  const provider = await providerParam(app, req.params.provider);
  const pool = poolParam(req);
  const body = bodyOf(req, ['action', 'filter', 'max_id', 'expected']);
  const action = oneOf(body.action, 'action', ['recheck', 'remove'] as const);
  if (!action) throw badRequest('action is required: recheck or remove');
  const filter = body.filter ?? {};
  if (typeof filter !== 'object' || filter === null || Array.isArray(filter)) throw badRequest('filter must be an object');
  const match = matchOf((n) => (filter as Record<string, unknown>)[n]);
  const maxId = body.max_id;
  if (typeof maxId !== 'number' || !Number.isInteger(maxId) || maxId < 1 || maxId > LIMITS.maxId) {
    throw badRequest('max_id is required: the max_id of the count the confirmation showed');
  }
  match.maxId = maxId;
  const now = await countMatching(app.db, { providerId: provider.id, pool, match });
  if (body.expected !== undefined && body.expected !== now.count) {
    throw new HttpError(
      409,
      'selection_changed',
      `the filter matches ${now.count} tokens now, not ${JSON.stringify(body.expected)}: look again before acting`,
    );
  }
  if (action === 'remove') {
    const r = await removeMatching(app, { provider, pool, match }, 'console');
    audit(app, req, 'bulk_remove', { provider: provider.name, pool, match, ...r });
    return json(200, r);
  }
  const runId = await startRun(app, { trigger: 'console', provider: provider.name, pool, force: true, selection: match });
  audit(app, req, 'bulk_recheck', { provider: provider.name, pool, match, tokens: now.count, runId });
  return json(202, { run_id: runId, tokens: now.count });
}

async function postImport(req: HttpRequest, app: HttpContext): Promise<Reply> {
  const body = bodyOf(req, ['provider', 'pool', 'text', 'label', 'expect']);
  const provider = await providerParam(app, text(body.provider, 'provider', LIMITS.nameChars));
  const pool = text(body.pool, 'pool', LIMITS.nameChars) ?? 'default';
  if (!NAME_PATTERN.test(pool)) throw badRequest(`pool must be letters, digits, - and _, at most ${LIMITS.nameChars}`);
  const label = text(body.label, 'label', LIMITS.labelChars);
  const expect = oneOf(body.expect, 'expect', ['live', 'dead'] as const);
  if (typeof body.text !== 'string') throw badRequest('text is required: the tokens, one per line');
  const r = await importIntoPool(app, { provider, pool, entries: parseTokenLines(body.text), source: 'console', label, expect });
  audit(app, req, 'import', { provider: provider.name, pool, added: r.added, duplicates: r.duplicates });
  return json(200, { provider: provider.name, pool, ...r });
}

async function getToken(req: HttpRequest, app: HttpContext): Promise<Reply> {
  const page = await tokenPage(app.db, idParam(req));
  if (!page) throw new HttpError(404, 'unknown_token', `no token with id ${req.params.id}`);
  return json(200, page);
}

async function deleteToken(req: HttpRequest, app: HttpContext): Promise<Reply> {
  const removed = await removeToken(app, idParam(req), 'console');
  audit(app, req, 'remove', { id: removed.id, fingerprint: removed.fingerprint });
  return json(200, { archived: removed });
}

async function postRun(req: HttpRequest, app: HttpContext): Promise<Reply> {
  const body = bodyOf(req, ['provider', 'pool', 'force']);
  const provider = text(body.provider, 'provider', LIMITS.nameChars);
  const pool = text(body.pool, 'pool', LIMITS.nameChars);
  if (pool !== undefined && !NAME_PATTERN.test(pool)) throw badRequest('pool must be letters, digits, - and _');
  if (body.force !== undefined && typeof body.force !== 'boolean') throw badRequest('force must be true or false');
  const runId = await startRun(app, { trigger: 'console', provider, pool, force: body.force === true });
  audit(app, req, 'check', { provider, pool, force: body.force === true, runId });
  return json(202, { run_id: runId });
}

async function getHeld(req: HttpRequest, app: HttpContext): Promise<Reply> {
  const provider = await providerParam(app, req.params.name);
  return json(200, { provider: provider.name, ...(await heldPruning(app.db, app.config, provider)) });
}

async function postPrune(req: HttpRequest, app: HttpContext): Promise<Reply> {
  const provider = await providerParam(app, req.params.name);
  const body = bodyOf(req, ['run_id']);
  const held = await heldPruning(app.db, app.config, provider);
  if (held.held_reason === null || body.run_id !== held.run_id) {
    throw new HttpError(409, 'hold_changed', 'the hold shown is not the latest any more: look at the tokens again before pruning');
  }
  const runId = await startRun(app, { trigger: 'console', provider: provider.name, forcePrune: true });
  audit(app, req, 'force_prune', { provider: provider.name, heldRun: held.run_id, candidates: held.count, runId });
  return json(202, { run_id: runId });
}

async function postRestore(req: HttpRequest, app: HttpContext): Promise<Reply> {
  const entry = await findArchiveEntry(app.db, idParam(req));
  if (!entry) throw new HttpError(404, 'not_archived', `no archive entry ${req.params.id}`);
  const r = await restoreToken(app, entry.fingerprint, { provider: entry.provider_name, pool: entry.pool }, 'console');
  audit(app, req, 'restore', { provider: r.provider, pool: r.pool, fingerprint: r.fingerprint, into: r.into });
  return json(200, { restored: r });
}

function page(req: HttpRequest): Reply {
  const lang = pickLanguage(req.headers['accept-language']);
  const built = assets().has('app.js');
  const preload = modules()
    .map((m) => `<link rel="modulepreload" href="/assets/${m}">`)
    .join('');
  const notBuilt =
    lang === 'zh-CN' ? '控制台的文件尚未构建：请运行 npm run build。' : 'The console’s files are not built: run npm run build.';
  const noScript = lang === 'zh-CN' ? 'tschk 控制台需要 JavaScript。' : 'The tschk console needs JavaScript.';
  const html =
    `<!doctype html><html lang="${lang}"><head><meta charset="utf-8">` +
    '<meta name="viewport" content="width=device-width, initial-scale=1"><meta name="color-scheme" content="light dark">' +
    '<title>tschk</title><link rel="icon" href="/assets/icon.svg" type="image/svg+xml"><link rel="stylesheet" href="/assets/console.css">' +
    `${preload}<script type="module" src="/assets/app.js"></script></head>` +
    `<body><noscript>${noScript}</noscript><main id="app">${built ? '' : `<p>${notBuilt}</p>`}</main></body></html>`;
  return withHeaders({ status: 200, text: html, contentType: 'text/html; charset=utf-8' });
}

function asset(req: HttpRequest): Reply {
  const a = assets().get(req.params.name!);
  if (!a) return json(404, errorBody('not_found', `no asset ${quote(req.params.name!)}`));
  const headers = { ETag: a.etag, 'Cache-Control': 'no-cache' };
  if (req.headers['if-none-match'] === a.etag) return withHeaders({ status: 304, text: '', headers });
  return withHeaders({ status: 200, text: a.body, contentType: a.contentType, headers });
}

const API = '/console/api';

/** The pages are one document: the browser draws each from the address. */
const PAGES = ['/', '/pools/{provider}/{pool}', '/tokens/{id}', '/runs', '/runs/{id}', '/archive'];

export const consoleRoutes: Route[] = [
  ...PAGES.map((path): Route => ({ method: 'GET', path, auth: 'none', handler: page })),
  { method: 'GET', path: '/assets/{name}', auth: 'none', handler: asset },
  { method: 'GET', path: `${API}/session`, auth: 'none', handler: safely(getSession) },
  { method: 'POST', path: `${API}/session`, auth: 'none', handler: safely(signIn) },
  { method: 'DELETE', path: `${API}/session`, auth: 'none', handler: changing(signOut) },
  {
    method: 'GET',
    path: `${API}/overview`,
    auth: 'none',
    handler: reading((_r, app) => overview(app.db, app.config).then((o) => json(200, o))),
  },
  {
    method: 'GET',
    path: `${API}/trend`,
    auth: 'none',
    handler: reading(async (req, app) => json(200, await overviewTrend(app.db, wholeNumber(req.query.get('days'), 'days', 30, 1, 366)))),
  },
  { method: 'GET', path: `${API}/pools/{provider}/{pool}/tokens`, auth: 'none', handler: reading(getPoolTokens) },
  { method: 'GET', path: `${API}/pools/{provider}/{pool}/match`, auth: 'none', handler: reading(getMatch) },
  { method: 'POST', path: `${API}/pools/{provider}/{pool}/bulk`, auth: 'none', handler: changing(postBulk) },
  { method: 'POST', path: `${API}/tokens`, auth: 'none', handler: changing(postImport) },
  { method: 'GET', path: `${API}/tokens/{id}`, auth: 'none', handler: reading(getToken) },
  { method: 'DELETE', path: `${API}/tokens/{id}`, auth: 'none', handler: changing(deleteToken) },
  { method: 'POST', path: `${API}/runs`, auth: 'none', handler: changing(postRun) },
  {
    method: 'GET',
    path: `${API}/runs`,
    auth: 'none',
    handler: reading(async (req, app) => {
      const before = req.query.get('before');
      const beforeId = before ? parseId(before) : undefined;
      if (before && beforeId === undefined) throw badRequest('before must be a run id');
      return json(200, { runs: await runList(app.db, { limit: wholeNumber(req.query.get('limit'), 'limit', 50, 1, 200), beforeId }) });
    }),
  },
  {
    method: 'GET',
    path: `${API}/runs/{id}`,
    auth: 'none',
    handler: reading(async (req, app) => {
      const detail = await runDetail(app.db, app.config, idParam(req));
      if (!detail) throw new HttpError(404, 'unknown_run', `no run with id ${req.params.id}`);
      return json(200, detail);
    }),
  },
  { method: 'GET', path: `${API}/providers/{name}/held`, auth: 'none', handler: reading(getHeld) },
  { method: 'POST', path: `${API}/providers/{name}/prune`, auth: 'none', handler: changing(postPrune) },
  {
    method: 'GET',
    path: `${API}/archive`,
    auth: 'none',
    handler: reading(async (req, app) => {
      const size = wholeNumber(req.query.get('size'), 'size', 50, 1, 200);
      const pageNo = wholeNumber(req.query.get('page'), 'page', 1, 1, 1_000_000);
      const q = text(req.query.get('q'), 'q', 100)?.trim();
      const restored = req.query.get('restored') === 'true';
      return json(200, {
        page: pageNo,
        size,
        ...(await archivePage(app.db, { text: q, restored, offset: (pageNo - 1) * size, limit: size })),
      });
    }),
  },
  { method: 'POST', path: `${API}/archive/{id}/restore`, auth: 'none', handler: changing(postRestore) },
];
