import { badResponse, objectOf, resultOf, snippet, unexpectedStatus } from './balance.js';
import { httpCall, parseJson } from './http.js';
import type { Checker, CheckResult } from './types.js';

/** Messages of a -2001 envelope that name an auth failure (docs/free-api.md). */
const AUTH_FAILURE = /invalid token|authorization failed|missing token|(?<!\d)4000[23](?!\d)|(?<!\d)401(?!\d)|token失效|未登录/i;

export type Classification = Pick<CheckResult, 'verdict' | 'reason' | 'detail'>;

/** Pure: what one free-api `/token/check` answer means. Every row of docs/free-api.md. */
export function classifyFreeApiAnswer(status: number, body: string): Classification {
  if (status !== 200) return unexpectedStatus(status, body);
  const answer = objectOf(parseJson(body));
  if (!answer) return badResponse(body);
  if (answer.live === true) return { verdict: 'live', reason: 'upstream_accepted', detail: null };
  // {"live": false} is also what a free-api says when it could not parse the upstream: a single
  // one is only a suspicion; confirmation over several runs is what prunes.
  if (answer.live === false) return { verdict: 'dead', reason: 'upstream_rejected', detail: null };
  const message = typeof answer.message === 'string' ? answer.message : '';
  switch (answer.code) {
    case -2001:
      return AUTH_FAILURE.test(message)
        ? { verdict: 'dead', reason: 'upstream_auth_failed', detail: snippet(message) }
        : { verdict: 'unknown', reason: 'upstream_error', detail: snippet(message) };
    case -1000:
      return { verdict: 'unknown', reason: 'upstream_unreachable', detail: snippet(message) };
    case -2000:
      return { verdict: 'unknown', reason: 'bad_request', detail: snippet(message) };
    default:
      return badResponse(body);
  }
}

export const freeApiChecker: Checker = {
  kind: 'free-api',
  requiresUrl: true,
  async check(token, target, ctx) {
    const res = await httpCall(
      target.checkUrl!,
      { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token }) },
      ctx,
    );
    const result = resultOf(res, classifyFreeApiAnswer);
    if (result.reason === 'bad_request') {
      ctx.logger.error({ provider: target.providerName }, 'free-api rejected our request body (-2000): this is a tschk bug');
    }
    return result;
  },
};
