import type { Transaction } from 'kysely';
import type { Db, Executor } from './connect.js';
import { num } from './dialect.js';
import { verdictWord } from './history.js';
import type { Database, TokenDailyRow, TokenDailyTable, Verdict } from './schema.js';

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

/** Checks and live answers per provider, pool and rolled-up day in [from, until) (`YYYY-MM-DD`). */
export async function dailyLiveCounts(
  db: Executor,
  q: { from: string; until: string; providerId?: number; pool?: string },
): Promise<Array<{ provider: string; pool: string; day: string; checks: number; live: number }>> {
  let rolled = db.kysely
    .selectFrom('token_daily as d')
    .innerJoin('tokens as t', 't.id', 'd.token_id')
    .innerJoin('providers as p', 'p.id', 'd.provider_id')
    .select((eb) => [
      'p.name as provider',
      't.pool as pool',
      'd.day',
      eb.fn.sum<number>('d.checks').as('checks'),
      eb.fn.sum<number>('d.live').as('live'),
    ])
    .where('d.day', '>=', q.from)
    .where('d.day', '<', q.until)
    .groupBy(['p.name', 't.pool', 'd.day']);
  if (q.providerId !== undefined) rolled = rolled.where('d.provider_id', '=', q.providerId);
  if (q.pool !== undefined) rolled = rolled.where('t.pool', '=', q.pool);
  return (await rolled.execute()).map((r) => ({
    provider: r.provider,
    pool: r.pool,
    day: r.day,
    checks: num(r.checks),
    live: num(r.live),
  }));
}

/** A token's rolled-up days in [from, until) (`YYYY-MM-DD`), oldest first. */
export async function tokenDailyRows(db: Executor, tokenId: number, from: string, until: string): Promise<TokenDailyRow[]> {
  return db.kysely
    .selectFrom('token_daily')
    .selectAll()
    .where('token_id', '=', tokenId)
    .where('day', '>=', from)
    .where('day', '<', until)
    .orderBy('day')
    .execute();
}
