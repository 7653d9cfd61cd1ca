import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Config } from '../config.js';
import type { Db } from '../db/connect.js';
import { deleteExpiredSessions, deleteSession, insertSession, sessionExpiry } from '../db/console-sessions.js';
import type { HttpRequest } from '../http/router.js';

/**
 * Console sign-in. The browser holds a random session value in an HttpOnly, SameSite=Strict
 * cookie; the database holds only HMAC(API secret, value), so a copy of the database signs nobody
 * in, and changing the API secret ends every session. The CSRF token is derived the same way:
 * only a page that read it from a same-origin answer can send it back in a header.
 */

export const SESSION_COOKIE = 'tschk_session';

const keyed = (secret: string, purpose: string, value: string) => createHmac('sha256', secret).update(`${purpose}:${value}`).digest();

export const sessionId = (secret: string, value: string) => keyed(secret, 'session', value).toString('hex');
export const csrfToken = (secret: string, value: string) => keyed(secret, 'csrf', value).toString('base64url');

export function sameToken(a: string, b: string): boolean {
  const ha = createHmac('sha256', 'compare').update(a).digest();
  const hb = createHmac('sha256', 'compare').update(b).digest();
  return timingSafeEqual(ha, hb);
}

/** The session cookie's value; undefined when absent, or sent twice (which one counts would be a guess). */
export function sessionCookie(headers: IncomingHttpHeaders): string | undefined {
  const values = (headers.cookie ?? '')
    .split(';')
    .map((c) => c.trim())
    .filter((c) => c.startsWith(`${SESSION_COOKIE}=`))
    .map((c) => c.slice(SESSION_COOKIE.length + 1));
  return values.length === 1 && /^[A-Za-z0-9_-]{43}$/.test(values[0]!) ? values[0] : undefined;
}

export interface Session {
  value: string;
  expiresAt: Date;
  csrf: string;
}

export async function createSession(db: Db, secret: string, client: string, lifetimeMs: number, now = new Date()): Promise<Session> {
  const value = randomBytes(32).toString('base64url');
  const expiresAt = new Date(now.getTime() + lifetimeMs);
  // Each sign-in sweeps away the sessions that ran out.
  await deleteExpiredSessions(db, now);
  await insertSession(db, { id: sessionId(secret, value), client, createdAt: now, expiresAt });
  return { value, expiresAt, csrf: csrfToken(secret, value) };
}

export async function findSession(db: Db, secret: string, value: string, now = new Date()): Promise<Session | undefined> {
  const expiresAt = await sessionExpiry(db, sessionId(secret, value), now);
  return expiresAt ? { value, expiresAt, csrf: csrfToken(secret, value) } : undefined;
}

export async function endSession(db: Db, secret: string, value: string): Promise<void> {
  await deleteSession(db, sessionId(secret, value));
}

/** Whether the request reached tschk over HTTPS: X-Forwarded-Proto counts only behind a trusted proxy. */
export function cameOverHttps(req: HttpRequest, config: Readonly<Config>): boolean {
  if (!config.http.trustProxy) return false;
  const proto = String(req.headers['x-forwarded-proto'] ?? '')
    .split(',')[0]!
    .trim()
    .toLowerCase();
  return proto === 'https';
}

/** Who is signing in, for slowing down failures: the peer, or behind a trusted proxy the address it saw. */
export function clientOf(req: HttpRequest, config: Readonly<Config>): string {
  if (config.http.trustProxy) {
    const forwarded = String(req.headers['x-forwarded-for'] ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    // The last entry is the one our proxy appended; anything before it the client could have written.
    const last = forwarded[forwarded.length - 1];
    if (last) return last;
  }
  return req.remoteAddress || 'unknown';
}

export function sessionCookieHeader(value: string, maxAgeS: number, secure: boolean): string {
  return [
    `${SESSION_COOKIE}=${value}`,
    'Path=/',
    `Max-Age=${Math.max(0, Math.floor(maxAgeS))}`,
    'HttpOnly',
    'SameSite=Strict',
    ...(secure ? ['Secure'] : []),
  ].join('; ');
}

export interface ThrottlePolicy {
  /** Failures allowed at full speed. */
  free: number;
  /** The wait after the first failure beyond `free`; it doubles with each further one. */
  baseMs: number;
  maxMs: number;
  /** A client's failures are forgotten this long after its last one. */
  forgetMs: number;
  /** Clients remembered at most (the oldest are forgotten first). */
  maxClients: number;
}

export const SIGN_IN_THROTTLE: ThrottlePolicy = { free: 3, baseMs: 1_000, maxMs: 5 * 60_000, forgetMs: 15 * 60_000, maxClients: 10_000 };

/**
 * Failed sign-ins per client: after `free` failures, each further attempt must wait, twice as
 * long each time. An attempt made too early is refused without looking at the secret it sent.
 */
export class SignInThrottle {
  private clients = new Map<string, { failures: number; last: number }>();

  constructor(
    private readonly policy: ThrottlePolicy = SIGN_IN_THROTTLE,
    private readonly now: () => number = Date.now,
  ) {}

  /** Milliseconds the client must still wait before its next attempt; 0 when it may try now. */
  waitMs(client: string): number {
    const entry = this.entry(client);
    if (!entry || entry.failures < this.policy.free) return 0;
    const wait = Math.min(this.policy.maxMs, this.policy.baseMs * 2 ** (entry.failures - this.policy.free));
    return Math.max(0, entry.last + wait - this.now());
  }

  failed(client: string): void {
    const failures = (this.entry(client)?.failures ?? 0) + 1;
    this.clients.delete(client);
    this.clients.set(client, { failures, last: this.now() });
    if (this.clients.size > this.policy.maxClients) this.clients.delete(this.clients.keys().next().value!);
  }

  succeeded(client: string): void {
    this.clients.delete(client);
  }

  private entry(client: string) {
    const entry = this.clients.get(client);
    if (entry && this.now() - entry.last > this.policy.forgetMs) {
      this.clients.delete(client);
      return undefined;
    }
    return entry;
  }
}
