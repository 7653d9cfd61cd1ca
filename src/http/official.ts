import { summaryUrl } from '../checkers/deepseek-account.js';
import { httpCall, parseJson } from '../checkers/http.js';
import { checkerFor, checkSafely } from '../checkers/index.js';
import type { CheckContext, CheckResult } from '../checkers/types.js';
import type { HttpContext } from '../context.js';
import { findProvider, listProviders, type Provider } from '../db/providers.js';
import type { TokenRow } from '../db/schema.js';
import { listTokens, poolTokens } from '../db/tokens.js';
import { fingerprint, mask } from '../secret.js';
import { syncSources } from '../sources/index.js';
import { bearerToken } from './auth.js';
import { HttpError, reply, type HttpRequest, type Reply, type Route } from './router.js';

type Slot = Pick<CheckResult, 'verdict' | 'balance'>;

/** Pure: one account's place in the `/deep/list` array: its token estimation, `invalid` or `unknown`. */
export function accountSlot(r: Slot): string {
  if (r.verdict === 'dead') return 'invalid';
  if (r.verdict === 'unknown') return 'unknown';
  return r.balance ?? 'unknown';
}

/** Pure: one key's value in the `/deep/keylist` object: `<total_balance>-<is_available>`, `invalid` or `unknown`. */
export function keySlot(r: Slot): string {
  if (r.verdict === 'dead') return 'invalid';
  if (r.verdict === 'unknown') return 'unknown';
  // 402 says "no balance" without a figure: the original would have shown 0 and false.
  return `${r.balance ?? '0'}-${r.verdict === 'live'}`;
}

/**
 * Pure: the `/deep/keylist` object, in key order. Keys are masked unless TSCHK_LEGACY_REVEAL_KEYS;
 * two keys with one mask get their fingerprint added, so that neither hides the other.
 */
export function keylistAnswer(keys: ReadonlyArray<{ secret: string; result: Slot }>, reveal: boolean): Record<string, string> {
  const answer: Record<string, string> = {};
  for (const { secret, result } of keys) {
    let name = reveal ? secret : mask(secret);
    if (Object.hasOwn(answer, name)) name = `${name} (${fingerprint(secret)})`;
    answer[name] = keySlot(result);
  }
  return answer;
}

/** Legacy files feed the answer when TSCHK_LEGACY_DATA_DIR is set (its providers are named after them). */
const LEGACY_FEEDS = { 'deepseek-account': 'deep_user', 'deepseek-key': 'deep_key' } as const;
type OfficialKind = keyof typeof LEGACY_FEEDS;

/** The tokens to answer for, in order: the lines of the legacy file, else every provider of the kind. */
async function officialTokens(app: HttpContext, kind: OfficialKind): Promise<Array<{ provider: Provider; token: TokenRow }>> {
  if (app.config.legacyDataDir !== undefined) {
    const name = LEGACY_FEEDS[kind];
    await syncSources(app, { provider: name, pool: 'default' });
    const provider = await findProvider(app.db, name);
    if (!provider || provider.kind !== kind) return [];
    return (await poolTokens(app.db, provider.id, 'default')).map((token) => ({ provider, token }));
  }
  const out: Array<{ provider: Provider; token: TokenRow }> = [];
  for (const provider of (await listProviders(app.db)).filter((p) => p.kind === kind && p.enabled)) {
    const tokens = await listTokens(app.db, { providerId: provider.id });
    tokens.sort((a, b) => poolRank(a.pool) - poolRank(b.pool) || a.pool.localeCompare(b.pool) || a.position - b.position || a.id - b.id);
    out.push(...tokens.map((token) => ({ provider, token })));
  }
  return out;
}

const poolRank = (pool: string) => (pool === 'default' ? 0 : 1);

/** Checks every token now with its provider's checker (no retries, no history row), answers in order. */
async function checkInOrder(
  req: HttpRequest,
  app: HttpContext,
  kind: OfficialKind,
): Promise<Array<{ secret: string; result: CheckResult }>> {
  const items = await officialTokens(app, kind);
  const abort = app.abortSignal;
  const ctx: CheckContext = {
    dispatcher: app.dispatcher,
    timeoutMs: app.config.timeoutMs,
    signal: abort ? AbortSignal.any([req.signal, abort]) : req.signal,
    logger: app.logger,
  };
  const results = new Array<{ secret: string; result: CheckResult }>(items.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < items.length; i = next++) {
      const { provider, token } = items[i]!;
      const target = { providerName: provider.name, kind, checkUrl: provider.checkUrl };
      results[i] = { secret: token.secret, result: await checkSafely(checkerFor(provider.kind, app.checkers)!, token.secret, target, ctx) };
    }
  };
  await Promise.all(Array.from({ length: Math.min(app.config.providerConcurrency, items.length) }, worker));
  return results;
}

/** Forwards the caller's own platform `userToken` to the user summary and answers what came back. */
async function deepSingle(req: HttpRequest, app: HttpContext): Promise<Reply> {
  const userToken = bearerToken(req.headers);
  if (userToken === undefined) {
    throw new HttpError(401, 'unauthorized', 'send Authorization: Bearer <userToken> (from platform.deepseek.com local storage)', {
      'WWW-Authenticate': 'Bearer',
    });
  }
  const ctx: CheckContext = { dispatcher: app.dispatcher, timeoutMs: app.config.timeoutMs, signal: req.signal, logger: app.logger };
  const res = await httpCall(
    summaryUrl(app.config.deepseek.platformUrl),
    { method: 'GET', headers: { authorization: `Bearer ${userToken}`, accept: 'application/json' } },
    ctx,
  );
  if (!res.ok) {
    throw new HttpError(
      res.reason === 'timeout' ? 504 : 502,
      'upstream_unreachable',
      `the DeepSeek platform did not answer (${res.reason}); see TSCHK_DEEPSEEK_PLATFORM_URL`,
    );
  }
  if (parseJson(res.body) === undefined) {
    throw new HttpError(502, 'bad_upstream_answer', `the DeepSeek platform answered HTTP ${res.status} without JSON`);
  }
  return { status: res.status, text: res.body, contentType: 'application/json; charset=utf-8' };
}

const BASE = '/api/OfficialTokenCheck/Check/deep';

export const officialRoutes: Route[] = [
  { method: 'GET', path: `${BASE}/single`, auth: 'none', handler: deepSingle },
  {
    method: 'GET',
    path: `${BASE}/list`,
    auth: 'bearer',
    handler: async (req, app) =>
      reply(
        200,
        (await checkInOrder(req, app, 'deepseek-account')).map((c) => accountSlot(c.result)),
      ),
  },
  {
    method: 'GET',
    path: `${BASE}/keylist`,
    auth: 'bearer',
    handler: async (req, app) => reply(200, keylistAnswer(await checkInOrder(req, app, 'deepseek-key'), app.config.legacyRevealKeys)),
  },
];
