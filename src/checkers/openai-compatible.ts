import { badResponse, bearerCheck, endpointUrl, objectOf, snippet, unexpectedStatus, type BalanceClassification } from './balance.js';
import { parseJson } from './http.js';
import type { Checker } from './types.js';

/** A 403 that names the account, not the request, as the problem (OpenAI: `account_deactivated`). */
const ACCOUNT_GONE = /deactivat|banned|suspended|封禁|封号/i;
/** A WAF's "your IP address has been banned" is about our host, not the key. */
const ABOUT_OUR_IP = /\bIP\b|IP地址/i;

/** The JSON error's own words; an HTML page (a WAF, a proxy) says nothing about the key. */
function errorText(json: Record<string, unknown> | undefined): string {
  const error = objectOf(json?.error);
  return [error?.code, error?.type, error?.message, json?.error, json?.message].filter((v) => typeof v === 'string').join(' ');
}

/** Pure: what an answer of `GET {base}/v1/models` means (docs/official-apis.md). */
export function classifyOpenaiModels(status: number, body: string): BalanceClassification {
  const json = objectOf(parseJson(body));
  if (status === 200) {
    return Array.isArray(json?.data) ? { verdict: 'live', reason: 'upstream_accepted', detail: null } : badResponse(body);
  }
  if (status === 401) return { verdict: 'dead', reason: 'invalid_key', detail: snippet(body) };
  const said = errorText(json);
  if (status === 403 && ACCOUNT_GONE.test(said) && !ABOUT_OUR_IP.test(said))
    return { verdict: 'dead', reason: 'account_deactivated', detail: snippet(body) };
  if (status === 429) {
    const error = objectOf(json?.error);
    if (error?.code === 'insufficient_quota' || error?.type === 'insufficient_quota') {
      return { verdict: 'exhausted', reason: 'no_balance', detail: snippet(body) };
    }
  }
  return unexpectedStatus(status, body);
}

export const openaiCompatibleChecker: Checker = {
  kind: 'openai-compatible',
  requiresUrl: true,
  check(key, target, ctx) {
    return bearerCheck(endpointUrl(target.checkUrl!, '/v1/models'), key, ctx, classifyOpenaiModels);
  },
};
