import type { Transaction } from 'kysely';
import type { Db } from './connect.js';
import { num } from './dialect.js';
import { verdictWord } from './history.js';
import type { Database, TokenDailyTable, Verdict } from './schema.js';

export const DAY_MS = 86_400_000;

/** Days since 1970-01-01 (UTC) of an instant. */
export const dayNumber = (ms: number): number => Math.floor(ms / DAY_MS);
/** 'YYYY-MM-DD' of a day number. */
export const dayString = (day: number): string => new Date(day * DAY_MS).toISOString().slice(0, 10);

/** One raw check, as far as a rollup needs it. */
export interface CheckForRollup {
  tokenId: number;
  atMs: number;
  id: number;
  verdict: Verdict;
  reason: string | null;
  latencyMs: number | null;
  balance: string | null;
  currency: string | null;
}

export type DailyRollup = Omit<TokenDailyTable, 'day' | 'provider_id'> & { day: string };

/**
 * Pure: one row per token of the checks of one day. The last reason is that of the day's last
 * check; the last balance that of the last check that had one.
 */
export function summarizeDay(day: number, checks: readonly CheckForRollup[]): DailyRollup[] {
  const byToken = new Map<number, CheckForRollup[]>();
  for (const c of checks) {
    let list = byToken.get(c.tokenId);
    if (!list) byToken.set(c.tokenId, (list = []));
    list.push(c);
  }
  const out: DailyRollup[] = [];
  for (const [tokenId, list] of byToken) {
    list.sort((a, b) => a.atMs - b.atMs || a.id - b.id);
    const r: DailyRollup = {
      token_id: tokenId,
      day: dayString(day),
      checks: list.length,
      live: 0,
      dead: 0,
      exhausted: 0,
      unknown: 0,
      latency_min_ms: null,
      latency_avg_ms: null,
      latency_max_ms: null,
      last_reason: list[list.length - 1]!.reason,
      last_balance: null,
      last_currency: null,
    };
    let sum = 0;
    let timed = 0;
    for (const c of list) {
      r[c.verdict]++;
      if (c.latencyMs !== null) {
        sum += c.latencyMs;
        timed++;
        r.latency_min_ms = r.latency_min_ms === null ? c.latencyMs : Math.min(r.latency_min_ms, c.latencyMs);
        r.latency_max_ms = r.latency_max_ms === null ? c.latencyMs : Math.max(r.latency_max_ms, c.latencyMs);
      }
      if (c.balance !== null) {
        r.last_balance = c.balance;
        r.last_currency = c.currency;
      }
    }
    if (timed > 0) r.latency_avg_ms = Math.round(sum / timed);
    out.push(r);
  }
  return out.sort((a, b) => a.token_id - b.token_id);
}

export interface RollupQuery {
  tokenId?: number;
  providerId?: number;
  /** With providerId: only this pool's tokens. */
  pool?: string;
  /** The last N days, today included (by UTC day); default 30. */
  days?: number;
  now?: Date;
}

/** A day of one token, or of every token of a provider or pool added up. */
export interface DailyRollupView {
  day: string;
  /** Tokens counted (1 for one token). */
  tokens: number;
  checks: number;
  live: number;
  dead: number;
  exhausted: number;
  unknown: number;
  latency_min_ms: number | null;
  /** Averaged over the day's checks of all tokens counted. */
  latency_avg_ms: number | null;
  latency_max_ms: number | null;
  /** One token only: its last reason and balance of the day. */
  last_reason: string | null;
  last_balance: string | null;
  last_currency: string | null;
}

/**
 * The daily rollups, oldest day first: of one token (`tokenId`), or summed over a provider's
 * tokens (`providerId`, optionally one `pool`). Days the daily trim has not rolled up yet (today,
 * usually yesterday) are not in it: the raw checks in `token_status` have them.
 */
export async function dailyRollups(db: Db, q: RollupQuery): Promise<DailyRollupView[]> {
  if (q.tokenId === undefined && q.providerId === undefined) throw new Error('dailyRollups needs tokenId or providerId');
  const from = dayString(dayNumber((q.now ?? new Date()).getTime()) - Math.max(1, q.days ?? 30) + 1);
  if (q.tokenId !== undefined) {
    const rows = await db.kysely
      .selectFrom('token_daily as d')
      .select([
        'd.day',
        'd.checks',
        'd.live',
        'd.dead',
        'd.exhausted',
        'd.unknown',
        'd.latency_min_ms',
        'd.latency_avg_ms',
        'd.latency_max_ms',
        'd.last_reason',
        'd.last_balance',
        'd.last_currency',
      ])
      .where('d.token_id', '=', q.tokenId)
      .where('d.day', '>=', from)
      .orderBy('d.day')
      .execute();
    return rows.map((r) => ({
      day: r.day,
      tokens: 1,
      checks: num(r.checks),
      live: num(r.live),
      dead: num(r.dead),
      exhausted: num(r.exhausted),
      unknown: num(r.unknown),
      latency_min_ms: r.latency_min_ms === null ? null : num(r.latency_min_ms),
      latency_avg_ms: r.latency_avg_ms === null ? null : num(r.latency_avg_ms),
      latency_max_ms: r.latency_max_ms === null ? null : num(r.latency_max_ms),
      last_reason: r.last_reason,
      last_balance: r.last_balance,
      last_currency: r.last_currency,
    }));
  }
  let query = db.kysely
    .selectFrom('token_daily as d')
    .select((eb) => [
      'd.day',
      eb.fn.countAll().as('tokens'),
      eb.fn.sum('d.checks').as('checks'),
      eb.fn.sum('d.live').as('live'),
      eb.fn.sum('d.dead').as('dead'),
      eb.fn.sum('d.exhausted').as('exhausted'),
      eb.fn.sum('d.unknown').as('unknown'),
      eb.fn.min('d.latency_min_ms').as('latency_min_ms'),
      eb.fn.max('d.latency_max_ms').as('latency_max_ms'),
      eb.fn.sum(eb('d.latency_avg_ms', '*', eb.ref('d.checks'))).as('latency_weighted'),
      eb.fn.sum(eb.case().when('d.latency_avg_ms', 'is not', null).then(eb.ref('d.checks')).else(0).end()).as('latency_checks'),
    ])
    .where('d.provider_id', '=', q.providerId!)
    .where('d.day', '>=', from);
  if (q.pool !== undefined) {
    query = query.where('d.token_id', 'in', (eb) => eb.selectFrom('history_tokens').select('token_id').where('provider_id', '=', q.providerId!).where('pool', '=', q.pool!));
  }
  const rows = await query.groupBy('d.day').orderBy('d.day').execute();
  return rows.map((r) => {
    const timed = num(r.latency_checks);
    return {
      day: r.day,
      tokens: num(r.tokens),
      checks: num(r.checks),
      live: num(r.live),
      dead: num(r.dead),
      exhausted: num(r.exhausted),
      unknown: num(r.unknown),
      latency_min_ms: r.latency_min_ms === null ? null : num(r.latency_min_ms),
      latency_avg_ms: timed > 0 ? Math.round(num(r.latency_weighted) / timed) : null,
      latency_max_ms: r.latency_max_ms === null ? null : num(r.latency_max_ms),
      last_reason: null,
      last_balance: null,
      last_currency: null,
    };
  });
}

/** The checks of some tokens on one day, as `summarizeDay` takes them. */
export async function checksOfDay(
  db: Db,
  tokenIds: readonly number[],
  day: number,
  reasons: ReadonlyMap<number, string>,
  trx?: Transaction<Database>,
): Promise<CheckForRollup[]> {
  if (tokenIds.length === 0) return [];
  const { historyTime, readTime } = db.dialect;
  const rows = await (trx ?? db.kysely)
    .selectFrom('history_checks')
    .select(['token_id', 'at', 'id', 'verdict', 'reason_id', 'latency_ms', 'balance', 'currency'])
    .where('token_id', 'in', [...tokenIds])
    .where('at', '>=', historyTime(new Date(day * DAY_MS)))
    .where('at', '<', historyTime(new Date((day + 1) * DAY_MS)))
    .execute();
  return rows.map((r) => ({
    tokenId: num(r.token_id),
    atMs: readTime(r.at)!.getTime(),
    id: num(r.id),
    verdict: verdictWord(r.verdict),
    reason: reasons.get(num(r.reason_id)) ?? null,
    latencyMs: r.latency_ms === null ? null : num(r.latency_ms),
    balance: r.balance,
    currency: r.currency,
  }));
}
