import { badResponse, bearerCheck, decimalText, objectOf, snippet, unexpectedStatus, type BalanceClassification } from './balance.js';
import { parseJson } from './http.js';
import type { Checker } from './types.js';

export const DEEPSEEK_API_URL = 'https://api.deepseek.com';

/** Pure: what an answer of DeepSeek's `GET /user/balance` means (docs/official-apis.md). */
export function classifyDeepseekBalance(status: number, body: string): BalanceClassification {
  if (status === 401) return { verdict: 'dead', reason: 'invalid_key', detail: snippet(body) };
  if (status === 402) return { verdict: 'exhausted', reason: 'no_balance', detail: snippet(body) };
  if (status !== 200) return unexpectedStatus(status, body);
  const answer = objectOf(parseJson(body));
  if (!answer || typeof answer.is_available !== 'boolean') return badResponse(body);
  const wallets = balanceInfos(answer.balance_infos);
  // The CNY wallet is the one the original reported; other currencies stay visible in `detail`.
  const main = wallets.find((w) => w.currency === 'CNY') ?? wallets[0];
  const facts = {
    balance: main?.balance ?? null,
    currency: main?.currency ?? null,
    detail: wallets.length > 1 ? wallets.map((w) => `${w.currency} ${w.balance}`).join('; ') : null,
  };
  return answer.is_available
    ? { verdict: 'live', reason: 'upstream_accepted', ...facts }
    : { verdict: 'exhausted', reason: 'no_balance', ...facts };
}

function balanceInfos(value: unknown): Array<{ currency: string; balance: string }> {
  if (!Array.isArray(value)) return [];
  return value.flatMap((raw) => {
    const entry = objectOf(raw);
    const balance = decimalText(entry?.total_balance);
    return entry && typeof entry.currency === 'string' && balance !== null ? [{ currency: entry.currency.toUpperCase(), balance }] : [];
  });
}

export const deepseekKeyChecker: Checker = {
  kind: 'deepseek-key',
  requiresUrl: false,
  check(key, target, ctx) {
    const base = (target.checkUrl ?? DEEPSEEK_API_URL).replace(/\/+$/, '');
    return bearerCheck(`${base}/user/balance`, key, ctx, classifyDeepseekBalance);
  },
};
