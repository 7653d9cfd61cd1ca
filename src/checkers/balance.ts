import { httpCall, httpStatusReason, retryAfterSeconds, type HttpOutcome } from './http.js';
import type { CheckContext, CheckResult } from './types.js';

/** What one official API answer means, before the HTTP facts (status, latency) are added. */
export type BalanceClassification = Pick<CheckResult, 'verdict' | 'reason' | 'detail' | 'balance' | 'currency'>;

/**
 * An amount as decimal text. Official APIs send `"110.00"` or `49.58`; both are accepted and
 * stored as text so that no float rounding reaches the history.
 */
export function decimalText(value: unknown): string | null {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return null;
    const text = String(value);
    return /e/i.test(text) ? value.toFixed(12).replace(/\.?0+$/, '') : text;
  }
  if (typeof value === 'string' && /^-?\d+(\.\d+)?$/.test(value.trim())) return value.trim();
  return null;
}

/**
 * `{base}{path}` for an endpoint under `/v1`, tolerating a base that already ends in `/v1`
 * (the form OpenAI SDKs are configured with), so `https://api.moonshot.ai/v1` works too.
 */
export function endpointUrl(base: string, path: string): string {
  const trimmed = base.replace(/\/+$/, '');
  return /\/v1$/i.test(trimmed) && path.startsWith('/v1/') ? trimmed + path.slice(3) : trimmed + path;
}

export function objectOf(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

export function snippet(text: string): string | null {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat === '' ? null : flat.slice(0, 200);
}

/** The answer for a status the contract gives no meaning: never a verdict on the key. */
export function unexpectedStatus(status: number, body: string): BalanceClassification {
  return { verdict: 'unknown', reason: httpStatusReason(status), detail: snippet(body) };
}

export const badResponse = (body: string): BalanceClassification => ({ verdict: 'unknown', reason: 'bad_response', detail: snippet(body) });

/** A check's result from one exchange: a network failure is `unknown`, an answer is read by `classify`. */
export function resultOf(res: HttpOutcome, classify: (status: number, body: string) => BalanceClassification): CheckResult {
  if (!res.ok) return { verdict: 'unknown', reason: res.reason, httpStatus: null, latencyMs: res.latencyMs, detail: res.detail };
  return {
    ...classify(res.status, res.body),
    httpStatus: res.status,
    latencyMs: res.latencyMs,
    retryAfterS: res.status === 429 ? retryAfterSeconds(res.headers['retry-after']) : undefined,
  };
}

/** `GET url` with the key as a Bearer, read by `classify`. */
export async function bearerCheck(
  url: string,
  key: string,
  ctx: CheckContext,
  classify: (status: number, body: string) => BalanceClassification,
): Promise<CheckResult> {
  return resultOf(
    await httpCall(url, { method: 'GET', headers: { authorization: `Bearer ${key}`, accept: 'application/json' } }, ctx),
    classify,
  );
}
