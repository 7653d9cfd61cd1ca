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

export const MOONSHOT_API_URL = 'https://api.moonshot.cn';

/** The Kimi platform bills in CNY on `.cn` and in USD on the international `.ai` host. */
export function moonshotCurrency(base: string): string {
  let host = '';
  try {
    host = new URL(base).hostname;
  } catch {
    // an unreadable base fails at the request; the currency does not matter then
  }
  return /\.ai$/i.test(host) ? 'USD' : 'CNY';
}

/** Pure: what an answer of Moonshot's `GET /v1/users/me/balance` means (docs/official-apis.md). */
export function classifyMoonshotBalance(status: number, body: string, currency: string): BalanceClassification {
  if (status === 401) return { verdict: 'dead', reason: 'invalid_key', detail: snippet(body) };
  if (status !== 200) return unexpectedStatus(status, body);
  const answer = objectOf(parseJson(body));
  const balance = decimalText(objectOf(answer?.data)?.available_balance);
  // Errors may come with HTTP 200: only a success envelope carrying a balance counts.
  if (!answer || answer.code !== 0 || balance === null) return badResponse(body);
  return Number(balance) > 0
    ? { verdict: 'live', reason: 'upstream_accepted', balance, currency, detail: null }
    : { verdict: 'exhausted', reason: 'no_balance', balance, currency, detail: null };
}

export const moonshotKeyChecker: Checker = {
  kind: 'moonshot-key',
  requiresUrl: false,
  check(key, target, ctx) {
    const base = target.checkUrl ?? MOONSHOT_API_URL;
    const currency = moonshotCurrency(base);
    return bearerCheck(endpointUrl(base, '/v1/users/me/balance'), key, ctx, (status, body) =>
      classifyMoonshotBalance(status, body, currency),
    );
  },
};
