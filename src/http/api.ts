import { kindRequirements, providerKinds } from '../checkers/index.js';
import type { HttpContext } from '../context.js';
import { listHistory } from '../db/history.js';
import { findProvider, findProviderById, listProviders, upsertProvider } from '../db/providers.js';
import { findRun, listRuns } from '../db/runs.js';
import type { TokenState, Verdict } from '../db/schema.js';
import { findToken, listTokens, removeProviderAndTokens, tokenCountsByPool } from '../db/tokens.js';
import {
  EXPECT_PATTERN,
  EXPECT_RULE,
  LIMITS,
  NAME_PATTERN,
  NAME_RULE,
  TOKEN_STATES,
  URL_PATTERN,
  URL_RULE,
  isTokenState,
  parseId,
  quote,
  textProblem,
} from '../validation.js';
import { importIntoPool, providerByName, removeToken, startRun } from './operations.js';
import { historyView, providerView, runView, tokenView } from '../views.js';
import { HttpError, reply, type HttpRequest, type Route } from './router.js';

const badRequest = (message: string) => new HttpError(400, 'bad_request', message);

/** A query parameter as a whole number within bounds, or the default when absent. */
function queryInt(req: HttpRequest, name: string, def: number, min: number, max: number): number {
  const raw = req.query.get(name);
  if (raw === null || raw === '') return def;
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw badRequest(`${name} must be a whole number from ${min} to ${max}; got '${raw}'`);
  }
  return Number(raw);
}

/** A query parameter as text of at most `max` characters, or undefined when absent or empty. */
function queryText(req: HttpRequest, name: string, max: number): string | undefined {
  const v = req.query.get(name) || undefined;
  const problem = v === undefined ? undefined : textProblem(name, v, max);
  if (problem) throw badRequest(problem);
  return v;
}

function pathId(req: HttpRequest): number {
  const raw = req.params.id!;
  const id = parseId(raw);
  if (id === undefined) throw badRequest(`id must be a whole number from 1 to ${LIMITS.maxId}; got ${quote(raw)}`);
  return id;
}

/** The JSON body as an object whose members are only the named ones. */
function bodyObject(req: HttpRequest, allowed: readonly string[], optional = false): Record<string, unknown> {
  if (optional && req.body.length === 0) return {};
  const body = req.json();
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badRequest('the body must be a JSON object');
  const extra = Object.keys(body).filter((k) => !allowed.includes(k));
  if (extra.length > 0) throw badRequest(`unknown field ${quote(extra[0]!)}; accepted: ${allowed.join(', ')}`);
  return body as Record<string, unknown>;
}

/** `max` is the width of the column the value goes to: a longer one is the caller's mistake, not a 500. */
function stringField(
  body: Record<string, unknown>,
  field: string,
  rule?: { pattern: RegExp; says: string },
  max?: number,
): string | undefined {
  const v = body[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw badRequest(`${field} must be a string`);
  const problem = textProblem(field, v, max);
  if (problem) throw badRequest(problem);
  if (rule && !rule.pattern.test(v)) throw badRequest(`${field} must be ${rule.says}; got ${quote(v)}`);
  return v;
}

const poolRule = { pattern: NAME_PATTERN, says: NAME_RULE };

type PoolSummary = {
  pool: string;
  tokens: number;
  states: Record<TokenState, number>;
  verdicts: Record<Verdict | 'unchecked', number>;
  last_checked_at: string | null;
};

/** Per provider and pool: how many tokens, by state and by current verdict, and when one was last checked. */
async function poolSummaries(app: HttpContext): Promise<Map<number, PoolSummary[]>> {
  const byProvider = new Map<number, Map<string, PoolSummary>>();
  for (const r of await tokenCountsByPool(app.db)) {
    const pools = byProvider.get(r.providerId) ?? new Map<string, PoolSummary>();
    byProvider.set(r.providerId, pools);
    const s = pools.get(r.pool) ?? {
      pool: r.pool,
      tokens: 0,
      states: { active: 0, suspect: 0, invalid: 0, disabled: 0 },
      verdicts: { live: 0, dead: 0, exhausted: 0, unknown: 0, unchecked: 0 },
      last_checked_at: null,
    };
    pools.set(r.pool, s);
    s.tokens += r.n;
    s.states[r.state] += r.n;
    s.verdicts[r.verdict ?? 'unchecked'] += r.n;
    const last = r.lastCheckedAt?.toISOString() ?? null;
    if (last !== null && (s.last_checked_at === null || last > s.last_checked_at)) s.last_checked_at = last;
  }
  return new Map([...byProvider].map(([id, pools]) => [id, [...pools.values()].sort((a, b) => a.pool.localeCompare(b.pool))]));
}

async function getProviders(app: HttpContext) {
  const summaries = await poolSummaries(app);
  const providers = (await listProviders(app.db)).map((p) => ({ ...providerView(p, app.config), pools: summaries.get(p.id) ?? [] }));
  return reply(200, { providers });
}

async function postProvider(req: HttpRequest, app: HttpContext) {
  const body = bodyObject(req, ['name', 'kind', 'url', 'concurrency']);
  const name = stringField(body, 'name', { pattern: NAME_PATTERN, says: NAME_RULE });
  if (name === undefined) throw badRequest(`name is required: ${NAME_RULE}`);
  const kind = stringField(body, 'kind') ?? '';
  const checker = kindRequirements(kind);
  if (!checker) throw badRequest(`kind must be one of ${providerKinds().join(', ')}; got ${quote(kind)}`);
  const url = stringField(body, 'url', { pattern: URL_PATTERN, says: URL_RULE }, LIMITS.urlChars);
  if (checker.requiresUrl && url === undefined) throw badRequest(`url is required for kind ${kind}`);
  const concurrency = body.concurrency ?? null;
  if (
    concurrency !== null &&
    (typeof concurrency !== 'number' || !Number.isInteger(concurrency) || concurrency < 1 || concurrency > LIMITS.concurrency)
  ) {
    throw badRequest(
      `concurrency must be a whole number from 1 to ${LIMITS.concurrency}, or null; got ${quote(JSON.stringify(concurrency))}`,
    );
  }
  const existed = (await findProvider(app.db, name)) !== undefined;
  const p = await upsertProvider(app.db, { name, kind, checkUrl: url ?? null, concurrency });
  return reply(existed ? 200 : 201, { provider: providerView(p, app.config) });
}

async function deleteProvider(req: HttpRequest, app: HttpContext) {
  const p = await providerByName(app, req.params.name!, 404);
  const declared = app.config.legacyProviders.find((d) => d.name === p.name);
  if (declared) {
    throw new HttpError(
      409,
      'provider_declared',
      `provider '${p.name}' is declared by ${declared.variable}; unset it and restart to remove it`,
    );
  }
  const archived = await removeProviderAndTokens(app.db, p, 'api');
  return reply(200, { removed: p.name, archived_tokens: archived });
}

async function getTokens(req: HttpRequest, app: HttpContext) {
  const providerName = queryText(req, 'provider', LIMITS.nameChars);
  const provider = providerName === undefined ? undefined : await providerByName(app, providerName, 400);
  const pool = queryText(req, 'pool', LIMITS.nameChars);
  const state = req.query.get('state') || undefined;
  if (state !== undefined && !isTokenState(state)) {
    throw badRequest(`state must be one of ${TOKEN_STATES.join(', ')}; got ${quote(state)}`);
  }
  const limit = queryInt(req, 'limit', 100, 1, 1000);
  const cursor = req.query.get('cursor') || undefined;
  const afterId = cursor === undefined ? undefined : parseId(cursor, 0);
  if (cursor !== undefined && afterId === undefined) {
    throw badRequest(`cursor must be a next_cursor value from a previous page: a whole number from 0 to ${LIMITS.maxId}`);
  }
  const rows = await listTokens(app.db, {
    providerId: provider?.id,
    pool,
    state: state,
    afterId,
    limit: limit + 1,
  });
  const page = rows.slice(0, limit);
  const names = new Map((await listProviders(app.db)).map((p) => [p.id, p.name]));
  return reply(200, {
    tokens: page.map((t) => tokenView(t, app.db.dialect, names.get(Number(t.provider_id)))),
    next_cursor: rows.length > limit ? String(page[page.length - 1]!.id) : null,
  });
}

async function postTokens(req: HttpRequest, app: HttpContext) {
  const body = bodyObject(req, ['provider', 'pool', 'tokens', 'expect', 'label']);
  const providerName = stringField(body, 'provider', undefined, LIMITS.nameChars);
  if (providerName === undefined) throw badRequest('provider is required');
  const provider = await providerByName(app, providerName, 400);
  const pool = stringField(body, 'pool', poolRule) ?? 'default';
  const expect = stringField(body, 'expect', { pattern: EXPECT_PATTERN, says: EXPECT_RULE }) as 'live' | 'dead' | undefined;
  const label = stringField(body, 'label', undefined, LIMITS.labelChars);
  const tokens = body.tokens;
  if (!Array.isArray(tokens) || tokens.some((t) => typeof t !== 'string')) {
    throw badRequest('tokens must be an array of strings, one token each ("T1,T2" counts as two)');
  }
  const r = await importIntoPool(app, { provider, pool, entries: tokens as string[], source: 'api', label, expect });
  return reply(200, { provider: provider.name, pool, added: r.added, duplicates: r.duplicates });
}

async function deleteToken(req: HttpRequest, app: HttpContext) {
  return reply(200, { archived: await removeToken(app, pathId(req)) });
}

async function tokenHistory(req: HttpRequest, app: HttpContext) {
  const id = pathId(req);
  const limit = queryInt(req, 'limit', 50, 1, 1000);
  const token = await findToken(app.db, id);
  const history = await listHistory(app.db, { tokenId: id, limit });
  // An archived token keeps its history: answer it, with token null.
  if (!token && history.length === 0) throw new HttpError(404, 'unknown_token', `no token or history with id ${id}`);
  const provider = token && (await findProviderById(app.db, Number(token.provider_id)));
  return reply(200, {
    token: token ? tokenView(token, app.db.dialect, provider?.name) : null,
    history: history.map((h) => historyView(h, app.db.dialect)),
  });
}

async function postRun(req: HttpRequest, app: HttpContext) {
  const body = bodyObject(req, ['provider', 'pool', 'force'], true);
  const providerName = stringField(body, 'provider', undefined, LIMITS.nameChars);
  const pool = stringField(body, 'pool', poolRule);
  if (body.force !== undefined && typeof body.force !== 'boolean') throw badRequest('force must be true or false');
  const runId = await startRun(app, { trigger: 'api', provider: providerName, pool, force: body.force === true });
  return reply(202, { run_id: runId }, { Location: `/api/v1/runs/${runId}` });
}

async function getRuns(req: HttpRequest, app: HttpContext) {
  const limit = queryInt(req, 'limit', 20, 1, 500);
  return reply(200, { runs: (await listRuns(app.db, limit)).map((r) => runView(r, app.db.dialect)) });
}

async function getRun(req: HttpRequest, app: HttpContext) {
  const run = await findRun(app.db, pathId(req));
  if (!run) throw new HttpError(404, 'unknown_run', `no run with id ${req.params.id}`);
  return reply(200, { run: runView(run, app.db.dialect) });
}

const V1 = '/api/v1';

export const apiRoutes: Route[] = [
  { method: 'GET', path: `${V1}/providers`, auth: 'bearer', handler: (_req, app) => getProviders(app) },
  { method: 'POST', path: `${V1}/providers`, auth: 'bearer', handler: postProvider },
  { method: 'DELETE', path: `${V1}/providers/{name}`, auth: 'bearer', handler: deleteProvider },
  { method: 'GET', path: `${V1}/tokens`, auth: 'bearer', handler: getTokens },
  { method: 'POST', path: `${V1}/tokens`, auth: 'bearer', handler: postTokens },
  { method: 'DELETE', path: `${V1}/tokens/{id}`, auth: 'bearer', handler: deleteToken },
  { method: 'GET', path: `${V1}/tokens/{id}/history`, auth: 'bearer', handler: tokenHistory },
  { method: 'POST', path: `${V1}/runs`, auth: 'bearer', handler: postRun },
  { method: 'GET', path: `${V1}/runs`, auth: 'bearer', handler: getRuns },
  { method: 'GET', path: `${V1}/runs/{id}`, auth: 'bearer', handler: getRun },
];
