import { createHash } from 'node:crypto';
import { fingerprint, mask } from '../secret.js';
import { badResponse, decimalText, objectOf, snippet, unexpectedStatus, type BalanceClassification } from './balance.js';
import { httpCall, parseJson, retryAfterSeconds } from './http.js';
import type { CheckContext, Checker, CheckResult } from './types.js';

export const DEEPSEEK_PLATFORM_URL = 'https://platform.deepseek.com';
/** Repeated logins get a platform account flagged: a failed one is not retried sooner than this. */
export const LOGIN_COOLDOWN_MS = 5 * 60_000;

export interface DeepseekAccount {
  account: string;
  password: string;
  /** An account with `@` logs in by e-mail, any other by mobile number. */
  by: 'email' | 'mobile';
}

/** The stored token is `account-password`, split at the FIRST `-` (a password may hold more). */
export function parseDeepseekAccount(token: string): DeepseekAccount | undefined {
  const dash = token.indexOf('-');
  if (dash < 0) return undefined;
  const account = token.slice(0, dash).trim();
  const password = token.slice(dash + 1);
  if (account === '' || password === '') return undefined;
  return { account, password, by: account.includes('@') ? 'email' : 'mobile' };
}

/** Stable per account, so that the platform sees one device for it across restarts. */
export function deviceIdFor(account: string): string {
  return createHash('sha256').update(`tschk-device:${account}`, 'utf8').digest('hex').slice(0, 32);
}

function loginBody(a: DeepseekAccount): string {
  return JSON.stringify({
    email: a.by === 'email' ? a.account : '',
    mobile: a.by === 'mobile' ? a.account : '',
    password: a.password,
    area_code: '+86',
    device_id: deviceIdFor(a.account),
    os: 'web',
  });
}

const loginUrl = (base: string) => `${base.replace(/\/+$/, '')}/auth-api/v0/users/login`;
export const summaryUrl = (base: string) => `${base.replace(/\/+$/, '')}/api/v0/users/get_user_summary`;

export type LoginOutcome = { ok: true; session: string } | { ok: false; result: BalanceClassification };

/** Pure: what an answer of the platform's login means. */
export function classifyLoginAnswer(status: number, body: string): LoginOutcome {
  if (status !== 200) return { ok: false, result: unexpectedStatus(status, body) };
  const json = objectOf(parseJson(body));
  // An HTML page or an empty body with 200 is a captcha or WAF page, not an answer about the account.
  if (!json) return { ok: false, result: { verdict: 'unknown', reason: 'login_blocked', detail: snippet(body) } };
  const data = objectOf(json.data);
  if ((json.code !== undefined && json.code !== 0) || typeof data?.biz_code !== 'number') {
    return { ok: false, result: { verdict: 'unknown', reason: 'upstream_error', detail: snippet(body) } };
  }
  if (data.biz_code !== 0) {
    const message = typeof data.biz_msg === 'string' ? data.biz_msg : `biz_code ${data.biz_code}`;
    return { ok: false, result: { verdict: 'dead', reason: 'login_rejected', detail: snippet(message) } };
  }
  const bizData = objectOf(data.biz_data);
  // Some builds put the session token at biz_data.token instead of biz_data.user.token.
  const session = objectOf(bizData?.user)?.token ?? bizData?.token;
  return typeof session === 'string' && session !== '' ? { ok: true, session } : { ok: false, result: badResponse(body) };
}

const SESSION_EXPIRED = new Set([40002, 40003]);

export type SummaryOutcome = { expired: true } | { expired: false; result: BalanceClassification };

/** Pure: what an answer of the platform's user summary means. */
export function classifySummaryAnswer(status: number, body: string): SummaryOutcome {
  if (status === 401 || status === 403) return { expired: true };
  if (status !== 200) return { expired: false, result: unexpectedStatus(status, body) };
  const json = objectOf(parseJson(body));
  if (!json) return { expired: false, result: badResponse(body) };
  const data = objectOf(json.data);
  if (SESSION_EXPIRED.has(json.code as number) || SESSION_EXPIRED.has(data?.biz_code as number)) return { expired: true };
  if (json.code !== 0 || (data?.biz_code !== undefined && data.biz_code !== 0)) {
    return { expired: false, result: { verdict: 'unknown', reason: 'upstream_error', detail: snippet(body) } };
  }
  // Older answers put the fields directly in `data`.
  const fields = objectOf(data?.biz_data) ?? data;
  const estimation = decimalText(fields?.total_available_token_estimation);
  if (estimation === null) return { expired: false, result: badResponse(body) };
  const facts = { balance: estimation, currency: 'tokens', detail: walletsText(fields) };
  return {
    expired: false,
    result:
      Number(estimation) > 0
        ? { verdict: 'live', reason: 'upstream_accepted', ...facts }
        : { verdict: 'exhausted', reason: 'no_balance', ...facts },
  };
}

/** `topped-up CNY 5.00; granted CNY 10.00`: the money behind the token estimation. */
function walletsText(fields: Record<string, unknown> | undefined): string | null {
  const parts: string[] = [];
  for (const [label, key] of [
    ['topped-up', 'normal_wallets'],
    ['granted', 'bonus_wallets'],
  ] as const) {
    const wallets = fields?.[key];
    if (!Array.isArray(wallets)) continue;
    for (const w of wallets.map(objectOf)) {
      const balance = decimalText(w?.balance);
      if (balance !== null && typeof w?.currency === 'string') parts.push(`${label} ${w.currency} ${balance}`);
    }
  }
  return parts.length ? parts.join('; ') : null;
}

export interface AccountCheckerOptions {
  now?: () => number;
  cooldownMs?: number;
}

/**
 * The `deepseek-account` checker: log in (once per account while the session lasts), read the
 * summary, log in again once when the platform says the session expired. Sessions and failed
 * logins are remembered in memory only; neither a password nor a session is ever logged.
 */
export function createDeepseekAccountChecker(opts: AccountCheckerOptions = {}): Checker {
  const now = opts.now ?? Date.now;
  const cooldownMs = opts.cooldownMs ?? LOGIN_COOLDOWN_MS;
  const sessions = new Map<string, string>();
  const failedLogins = new Map<string, number>();
  const loginsInFlight = new Map<string, Promise<LoginOutcome & { latencyMs: number; httpStatus: number | null }>>();

  const attemptLogin = async (key: string, account: DeepseekAccount, base: string, ctx: CheckContext, provider: string) => {
    const res = await httpCall(
      loginUrl(base),
      { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json' }, body: loginBody(account) },
      ctx,
    );
    const outcome: LoginOutcome = res.ok
      ? classifyLoginAnswer(res.status, res.body)
      : { ok: false, result: { verdict: 'unknown', reason: res.reason, detail: res.detail } };
    if (outcome.ok) {
      sessions.set(key, outcome.session);
      failedLogins.delete(key);
    } else if (outcome.result.reason !== 'aborted') {
      failedLogins.set(key, now());
      ctx.logger.warn(
        { provider, account: mask(account.account), reason: outcome.result.reason, retryInS: Math.round(cooldownMs / 1000) },
        'DeepSeek platform login failed; this account is not tried again before the cool-down ends',
      );
    }
    return { ...outcome, latencyMs: res.latencyMs, httpStatus: res.ok ? res.status : null };
  };

  const logIn = (key: string, account: DeepseekAccount, base: string, ctx: CheckContext, provider: string) => {
    const failedAt = failedLogins.get(key);
    if (failedAt !== undefined && now() - failedAt < cooldownMs) {
      const waitS = Math.ceil((cooldownMs - (now() - failedAt)) / 1000);
      return Promise.resolve({
        ok: false as const,
        result: { verdict: 'unknown' as const, reason: 'login_cooldown', detail: `last login failed; next attempt in ${waitS} s` },
        latencyMs: 0,
        httpStatus: null,
      });
    }
    // Two checks of one account at once (a run and a legacy request) share one login.
    let pending = loginsInFlight.get(key);
    if (!pending) {
      pending = attemptLogin(key, account, base, ctx, provider).finally(() => loginsInFlight.delete(key));
      loginsInFlight.set(key, pending);
    }
    return pending;
  };

  return {
    kind: 'deepseek-account',
    requiresUrl: false,
    wholeEntries: true,
    async check(token, target, ctx): Promise<CheckResult> {
      const account = parseDeepseekAccount(token);
      if (!account) {
        return { verdict: 'unknown', reason: 'malformed_account', httpStatus: null, latencyMs: 0, detail: 'expected account-password' };
      }
      const base = target.checkUrl ?? DEEPSEEK_PLATFORM_URL;
      const key = `${base}\n${fingerprint(token)}`;
      let latencyMs = 0;
      let session = sessions.get(key);
      let freshLogin = false;
      for (;;) {
        if (session === undefined) {
          const login = await logIn(key, account, base, ctx, target.providerName);
          latencyMs += login.latencyMs;
          if (!login.ok) return { ...login.result, httpStatus: login.httpStatus, latencyMs };
          session = login.session;
          freshLogin = true;
        }
        const res = await httpCall(
          summaryUrl(base),
          { method: 'GET', headers: { authorization: `Bearer ${session}`, accept: 'application/json' } },
          ctx,
        );
        latencyMs += res.latencyMs;
        if (!res.ok) return { verdict: 'unknown', reason: res.reason, httpStatus: null, latencyMs, detail: res.detail };
        const summary = classifySummaryAnswer(res.status, res.body);
        if (!summary.expired) {
          const retryAfterS = res.status === 429 ? retryAfterSeconds(res.headers['retry-after']) : undefined;
          return { ...summary.result, httpStatus: res.status, latencyMs, retryAfterS };
        }
        sessions.delete(key);
        if (freshLogin) {
          return {
            verdict: 'unknown',
            reason: 'session_expired',
            httpStatus: res.status,
            latencyMs,
            detail: 'a fresh session was refused',
          };
        }
        session = undefined;
      }
    },
  };
}
