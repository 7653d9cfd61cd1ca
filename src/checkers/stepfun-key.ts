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

export const STEPFUN_API_URL = 'https://api.stepfun.com';

/** Pure: what an answer of StepFun's `GET /v1/accounts` means (docs/official-apis.md). */
export function classifyStepfunAccount(status: number, body: string): BalanceClassification {
  if (status === 401) return { verdict: 'dead', reason: 'invalid_key', detail: snippet(body) };
  if (status === 402) return { verdict: 'exhausted', reason: 'no_balance', detail: snippet(body) };
  if (status !== 200) return unexpectedStatus(status, body);
  const answer = objectOf(parseJson(body));
  const balance = decimalText(answer?.balance);
  if (!answer || answer.object !== 'account' || balance === null) return badResponse(body);
  // A postpaid account is billed afterwards: a balance at or below zero is not the end of it.
  const exhausted = answer.type !== 'postpaid' && Number(balance) <= 0;
  return exhausted
    ? { verdict: 'exhausted', reason: 'no_balance', balance, currency: 'CNY', detail: null }
    : {
        verdict: 'live',
        reason: 'upstream_accepted',
        balance,
        currency: 'CNY',
        detail: typeof answer.type === 'string' ? answer.type : null,
      };
}

export const stepfunKeyChecker: Checker = {
  kind: 'stepfun-key',
  requiresUrl: false,
  check(key, target, ctx) {
    return bearerCheck(endpointUrl(target.checkUrl ?? STEPFUN_API_URL, '/v1/accounts'), key, ctx, classifyStepfunAccount);
  },
};
