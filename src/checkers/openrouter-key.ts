import {
  badResponse,
  bearerCheck,
  decimalText,
  endpointUrl,
  objectOf,
  snippet,
  unexpectedStatus,
  type BalanceClassification,
} from './balance.js';
import { parseJson } from './http.js';
import type { Checker } from './types.js';

export const OPENROUTER_API_URL = 'https://openrouter.ai/api';

/** Pure: what an answer of OpenRouter's `GET /api/v1/key` means (docs/official-apis.md). */
export function classifyOpenrouterKey(status: number, body: string): BalanceClassification {
  if (status === 401) return { verdict: 'dead', reason: 'invalid_key', detail: snippet(body) };
  if (status === 402) return { verdict: 'exhausted', reason: 'no_balance', detail: snippet(body) };
  if (status !== 200) return unexpectedStatus(status, body);
  const data = objectOf(objectOf(parseJson(body))?.data);
  if (!data) return badResponse(body);
  // A key without a spending limit has no remaining amount of its own: live, balance unknown.
  if (data.limit_remaining === null || data.limit_remaining === undefined) {
    return { verdict: 'live', reason: 'upstream_accepted', balance: null, currency: null, detail: 'no limit' };
  }
  const remaining = decimalText(data.limit_remaining);
  if (remaining === null) return badResponse(body);
  return Number(remaining) > 0
    ? { verdict: 'live', reason: 'upstream_accepted', balance: remaining, currency: 'USD', detail: null }
    : { verdict: 'exhausted', reason: 'no_balance', balance: remaining, currency: 'USD', detail: null };
}

export const openrouterKeyChecker: Checker = {
  kind: 'openrouter-key',
  requiresUrl: false,
  check(key, target, ctx) {
    return bearerCheck(endpointUrl(target.checkUrl ?? OPENROUTER_API_URL, '/v1/key'), key, ctx, classifyOpenrouterKey);
  },
};
