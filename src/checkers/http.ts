import type { Dispatcher } from 'undici';
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
    const res = await exchange(url, init, ctx);
    return { ok: true, ...res, latencyMs: latency() };
  } catch (err) {
    if (ctx.signal?.aborted) return { ok: false, reason: 'aborted', detail: 'check aborted by shutdown', latencyMs: latency() };
    if (err instanceof NoAnswerInTime) {
      return { ok: false, reason: 'timeout', detail: `no answer within ${ctx.timeoutMs} ms`, latencyMs: latency() };
    }
    return { ok: false, ...networkReason(err), latencyMs: latency() };
  }
}

type Answer = { status: number; headers: Record<string, string | string[] | undefined>; body: string };

/**
 * The exchange on undici's dispatch API, the body gathered straight from its callbacks: the
 * `request()` API wraps every answer in a Node stream, which cost about a fifth of the CPU of a check
 * and held back the answers of the checks in flight behind it (measured with `npm run bench`).
 * The handler's own timer bounds the wait for the headers and between body chunks: undici's
 * `headersTimeout`/`bodyTimeout` tick every 499 ms (docs/free-api.md, Timing and load), so they are off here.
 * Connecting is bounded by the Agent.
 */
function exchange(
  url: string,
  init: { method: Dispatcher.HttpMethod; headers?: Record<string, string>; body?: string },
  ctx: CheckContext,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    ctx.signal?.throwIfAborted(); // rejects with the signal's reason
    const { origin, pathname, search } = new URL(url);
    const handler = new Exchange(resolve, reject, ctx.signal, ctx.timeoutMs);
    try {
      ctx.dispatcher.dispatch(
        {
          origin,
          path: pathname + search,
          method: init.method,
          headers: init.headers,
          body: init.body,
          headersTimeout: 0,
          bodyTimeout: 0,
        },
        handler,
      );
    } catch (err) {
      handler.fail(err); // undici's own dispatchers report through the handler; another might throw
    }
  });
}

/** The upstream was silent for a whole per-check timeout: for the headers, or between two body chunks. */
class NoAnswerInTime extends Error {}

/** One exchange's undici handler; also what the shutdown signal and its own timer abort. */
class Exchange implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined;
  private timer: NodeJS.Timeout | undefined;
  private settled = false;
  private status = 0;
  private headers: Answer['headers'] = {};
  private readonly chunks: Buffer[] = [];
  private size = 0;

  constructor(
    private readonly resolve: (answer: Answer) => void,
    private readonly reject: (err: unknown) => void,
    private readonly signal: AbortSignal | undefined,
    private readonly timeoutMs: number,
  ) {
    if (signal) inFlightUnder(signal).add(this);
  }

  /** The signal fired. Queued behind busy connections, an exchange has no controller yet: it is refused at its start. */
  abort(reason: unknown): void {
    this.controller?.abort(reason as Error);
    this.fail(reason);
  }

  /** On a connection, about to be sent: the wait for an answer starts, as undici's headersTimeout did. */
  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.settled) return void controller.abort(new Error('exchange abandoned'));
    // Once per exchange today; a retry or redirect would start it again, and must not leave the first timer armed.
    clearTimeout(this.timer);
    this.timer = setTimeout(timedOut, this.timeoutMs, this).unref();
  }

  onResponseStart(_c: Dispatcher.DispatchController, status: number, headers: Answer['headers']): void {
    this.status = status;
    this.headers = headers;
    this.timer?.refresh();
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.timer?.refresh();
    this.size += chunk.length;
    if (this.size <= MAX_BODY_BYTES) return void this.chunks.push(chunk);
    this.onResponseEnd(); // enough for any verdict: the rest is not read
    controller.abort(new Error('answer too large'));
  }

  onResponseEnd(): void {
    if (this.settle()) this.resolve({ status: this.status, headers: this.headers, body: Buffer.concat(this.chunks).toString('utf8') });
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    this.fail(err);
  }

  fail(err: unknown): void {
    if (this.settle()) this.reject(err);
  }

  /** True the first time: an exchange ends once. */
  private settle(): boolean {
    if (this.settled) return false;
    this.settled = true;
    clearTimeout(this.timer);
    if (this.signal) inFlightUnder(this.signal).delete(this);
    return true;
  }
}

function timedOut(exchange: Exchange): void {
  exchange.abort(new NoAnswerInTime());
}

const inFlight = new WeakMap<AbortSignal, Set<Exchange>>();

/**
 * The exchanges in flight under a signal. A signal gets a single listener however many exchanges
 * it covers: one EventTarget listener per exchange, added and removed, cost more CPU and memory
 * than the rest of the exchange.
 */
function inFlightUnder(signal: AbortSignal): Set<Exchange> {
  let exchanges = inFlight.get(signal);
  if (!exchanges) {
    const all = new Set<Exchange>();
    signal.addEventListener('abort', () => all.forEach((e) => e.abort(signal.reason)), { once: true });
    inFlight.set(signal, (exchanges = all));
  }
  return exchanges;
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
  for (let e = err as { code?: unknown; cause?: unknown } | undefined; e && codes.length < 5; e = e.cause as typeof e) {
    if (typeof e.code === 'string') codes.push(e.code);
  }
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
