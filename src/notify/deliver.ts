import type { AppContext } from '../context.js';
import { httpCall } from '../checkers/http.js';
import { sleep } from '../engine/limits.js';
import { backoffDelay } from '../engine/policy.js';
import type { Answer, OutgoingRequest } from './formats.js';

export interface DeliveryTiming {
  attempts: number;
  attemptTimeoutMs: number;
  /** Everything for one target, retries and waits included, ends by then: a run is never held longer. */
  deadlineMs: number;
  backoffBaseMs: number;
}

export const DEFAULT_TIMING: DeliveryTiming = { attempts: 3, attemptTimeoutMs: 5_000, deadlineMs: 10_000, backoffBaseMs: 500 };

/** `abortSignal`, the daemon's forceful-shutdown signal: past the grace period nobody waits for a receiver. */
export type DeliveryContext = Pick<AppContext, 'dispatcher' | 'logger' | 'abortSignal' | 'random'> & { timing: DeliveryTiming };

export interface Delivery {
  /** `webhook wecom`, `uptime-kuma deep/free`: what was notified, never the URL. */
  target: string;
  /** Host and port only: the path and query of a webhook URL often carry its key. */
  host: string;
  ok: boolean;
  attempts: number;
  reason?: string;
}

/**
 * Removes the parts of a URL that can hold its key (query values, credentials, and path segments
 * that are not plain words such as `webhook` or `sendMessage`) from a text a receiver produced.
 */
export function scrubUrl(text: string, url: string): string {
  const u = new URL(url);
  const keyLike = (p: string) => p.length >= 16 || (p.length >= 6 && /\d/.test(p));
  const parts = [...u.pathname.split('/').filter(keyLike), ...u.searchParams.values(), u.username, u.password]
    .flatMap((p) => [p, safeDecode(p)])
    .filter((p) => p.length >= 4)
    .sort((a, b) => b.length - a.length);
  return parts.reduce((t, p) => t.split(p).join('…'), text);
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/**
 * Sends one request with a timeout per attempt, retries what is worth retrying with backoff, and
 * gives up at the deadline. Never throws: the outcome is logged (host only) and returned.
 */
export async function deliver(
  req: OutgoingRequest,
  target: string,
  judge: (status: number, body: string) => Answer,
  ctx: DeliveryContext,
): Promise<Delivery> {
  const { timing } = ctx;
  const host = new URL(req.url).host;
  const timeout = AbortSignal.timeout(timing.deadlineMs);
  const deadline = ctx.abortSignal ? AbortSignal.any([timeout, ctx.abortSignal]) : timeout;
  let attempts = 0;
  let reason = 'not sent';
  while (attempts < timing.attempts && !deadline.aborted) {
    if (attempts > 0) await sleep(backoffDelay(attempts - 1, timing.backoffBaseMs, ctx.random), deadline);
    if (deadline.aborted) break;
    attempts++;
    const res = await httpCall(
      req.url,
      { method: req.method, headers: req.headers, body: req.body },
      { dispatcher: ctx.dispatcher, timeoutMs: timing.attemptTimeoutMs, signal: deadline, logger: ctx.logger },
    );
    const stopped = ctx.abortSignal?.aborted ? 'shutdown' : 'timeout';
    const answer: Answer = res.ok
      ? judge(res.status, res.body)
      : { ok: false, retry: true, reason: res.reason === 'aborted' ? stopped : res.reason };
    if (answer.ok) {
      ctx.logger.info({ target, host, attempts }, 'notification sent');
      return { target, host, ok: true, attempts };
    }
    reason = scrubUrl(answer.reason, req.url);
    if (!answer.retry) break;
    ctx.logger.debug({ target, host, attempt: attempts, reason }, 'notification attempt failed');
  }
  if (timeout.aborted && attempts < timing.attempts) reason = `${reason}; gave up after ${timing.deadlineMs} ms`;
  ctx.logger.warn({ target, host, attempts, reason }, 'notification failed');
  return { target, host, ok: false, attempts, reason };
}
