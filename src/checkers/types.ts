import type { Dispatcher } from 'undici';
import type { Logger } from '../logger.js';
import type { Verdict } from '../db/schema.js';

export type { Verdict };

/** The outcome of one check. Expected failures are data: a checker throws only on a bug. */
export interface CheckResult {
  verdict: Verdict;
  /** Short stable code: `upstream_rejected`, `timeout`, `http_502`, `rate_limited`, `no_balance`, … */
  reason: string;
  httpStatus: number | null;
  latencyMs: number;
  balance?: string | null;
  currency?: string | null;
  /** Short, secret-free. */
  detail?: string | null;
  /** Seconds the upstream asked us to wait (429 Retry-After). */
  retryAfterS?: number;
}

export interface CheckTarget {
  providerName: string;
  kind: string;
  /** The provider's configured URL (a free-api's `/token/check`, an official API base). */
  checkUrl: string | null;
}

export interface CheckContext {
  dispatcher: Dispatcher;
  timeoutMs: number;
  signal?: AbortSignal;
  logger: Logger;
}

export interface Checker {
  kind: string;
  /** Whether `check_url` must be given (no default endpoint). */
  requiresUrl: boolean;
  /** A stored entry is one credential even when it holds commas (an `account-password` line). */
  wholeEntries?: boolean;
  check(token: string, target: CheckTarget, ctx: CheckContext): Promise<CheckResult>;
}
