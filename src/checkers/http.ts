import { request, type Dispatcher } from 'undici';
import type { CheckContext } from './types.js';

export type HttpOutcome =
  | { ok: true; status: number; headers: Record<string, string | string[] | undefined>; body: string; latencyMs: number }
  | { ok: false; reason: string; detail: string; latencyMs: number };

/** Enough for any verdict; a bigger answer is not a check response anyway. */
const MAX_BODY_BYTES = 256 * 1024;

/**
 * One HTTP exchange with the per-check timeout. Network failures come back as data with a
 * stable reason (`timeout`, `connect_refused`, …) so that checkers can call them `unknown`.
 */
export async function httpCall(
  url: string,
  init: { method: Dispatcher.HttpMethod; headers?: Record<string, string>; body?: string },
  ctx: CheckContext,
): Promise<HttpOutcome> {
  const started = performance.now();
  const latency = () => Math.round(performance.now() - started);
  try {
    // undici's own timers bound the wait for the headers and between body chunks (connecting is
    // bounded by the Agent; their resolution is about a second), and undici removes its listener
    // from the daemon's long-lived signal when the request ends: no timer, AbortController nor
    // listener of ours per check.
    const res = await request(url, {
      method: init.method,
      headers: init.headers,
      body: init.body,
      dispatcher: ctx.dispatcher,
      signal: ctx.signal,
      headersTimeout: ctx.timeoutMs,
      bodyTimeout: ctx.timeoutMs,
    });
    const body = await readLimited(res.body);
    return { ok: true, status: res.statusCode, headers: res.headers, body, latencyMs: latency() };
  } catch (err) {
    if (ctx.signal?.aborted) return { ok: false, reason: 'aborted', detail: 'check aborted by shutdown', latencyMs: latency() };
    const code = (err as { code?: unknown } | null)?.code;
    if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
      return { ok: false, reason: 'timeout', detail: `no answer within ${ctx.timeoutMs} ms`, latencyMs: latency() };
    }
    return { ok: false, ...networkReason(err), latencyMs: latency() };
  }
}

function readLimited(body: Dispatcher.ResponseData['body']): Promise<string> {
  // Plain events: a stream's async iterator costs several promises per check.
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = () => resolve(Buffer.concat(chunks).toString('utf8'));
    body.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) return void chunks.push(chunk);
      body.destroy();
      done();
    });
    body.on('end', done);
    body.on('error', reject);
  });
}

const NETWORK_REASONS: Record<string, string> = {
  ECONNREFUSED: 'connect_refused',
  ECONNRESET: 'connection_reset',
  EPIPE: 'connection_reset',
  UND_ERR_SOCKET: 'connection_reset',
  UND_ERR_CLOSED: 'connection_reset',
  ENOTFOUND: 'dns_failure',
  EAI_AGAIN: 'dns_failure',
  ETIMEDOUT: 'timeout',
  UND_ERR_CONNECT_TIMEOUT: 'timeout',
  UND_ERR_HEADERS_TIMEOUT: 'timeout',
  UND_ERR_BODY_TIMEOUT: 'timeout',
  EHOSTUNREACH: 'host_unreachable',
  ENETUNREACH: 'host_unreachable',
  CERT_HAS_EXPIRED: 'tls_error',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'tls_error',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'tls_error',
};

function networkReason(err: unknown): { reason: string; detail: string } {
  const codes: string[] = [];
  for (let e: any = err; e && codes.length < 5; e = e.cause) if (typeof e.code === 'string') codes.push(e.code);
  const code = codes.find((c) => NETWORK_REASONS[c]);
  const message = err instanceof Error ? err.message : String(err);
  return { reason: code ? NETWORK_REASONS[code]! : 'network_error', detail: `${codes[0] ?? 'error'}: ${message}`.slice(0, 200) };
}

/** `Retry-After` in seconds (delta-seconds or an HTTP date); undefined when absent or unreadable. */
export function retryAfterSeconds(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const raw = Array.isArray(value) ? value[0] : value;
  if (raw === undefined || raw.trim() === '') return undefined;
  if (/^\d+$/.test(raw.trim())) return Number(raw.trim());
  const at = Date.parse(raw);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000));
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** The common answer for anything that is not the provider's normal HTTP status. */
export function httpStatusReason(status: number): string {
  return status === 429 ? 'rate_limited' : `http_${status}`;
}
