import { CronSchedule } from '../cron.js';
import type { Config } from '../config.js';
import { archivedSecrets, latestArchiveOfToken, searchArchive } from '../db/archive.js';
import type { Db } from '../db/connect.js';
import { num } from '../db/dialect.js';
import { listTokenEvents, runEvents } from '../db/events.js';
import {
  definiteVerdictsBefore,
  latestChecksOfToken,
  liveCountsByBucket,
  recentVerdictsOfToken,
  runDefiniteChecks,
  tokenChecksSince,
} from '../db/history.js';
import { readState, ROLLED_UNTIL } from '../db/retention.js';
import { readLease } from '../db/lease.js';
import { listProviders, type Provider } from '../db/providers.js';
import { countPruneCandidates, pruneCandidates, type CandidateQuery } from '../db/pruning.js';
import { dailyLiveCounts, tokenDailyRows } from '../db/rollups.js';
import { findRun, findRunProviders, lastFinishedRun, lastProviderOutcomes, latestRunningRun, listRuns } from '../db/runs.js';
import type { CheckRunRow, EventActor, TokenEventKind, TokenRow, TokenState, Verdict } from '../db/schema.js';
import {
  countDueTokens,
  countMatchingTokens,
  findToken,
  poolBalances,
  poolReasonCounts,
  poolTokenPage,
  tokenCountsByPool,
  TOKEN_SORTS,
  type PoolTokensQuery,
  type TokenMatch,
  type TokenSort,
} from '../db/tokens.js';
import { isBelowThreshold } from '../engine/low-balance.js';
import { describeSecret, mask } from '../secret.js';
import { historyView, isoTime, runView, tokenView } from '../views.js';

/**
 * Every answer the web console gives, shaped from the repository functions of `db/` (no SQL
 * here). Numbers over time (the 30-day live share, a token's days) join the days already rolled up
 * to the raw checks not rolled up yet; a token's past comes from the event log. Nothing here
 * returns a secret: tokens are a mask and a fingerprint, as in the JSON API.
 */

const DAY_MS = 86_400_000;
const VERDICTS: readonly Verdict[] = ['live', 'dead', 'exhausted', 'unknown'];

export interface PoolCard {
  provider: string;
  provider_kind: string;
  provider_enabled: boolean;
  pool: string;
  tokens: number;
  canaries: number;
  states: Record<TokenState, number>;
  verdicts: Record<Verdict | 'unchecked', number>;
  /** Live tokens among those in rotation that were checked (null: none checked yet). */
  live_share: number | null;
  last_checked_at: string | null;
  low_balance: number;
}

/** One card per provider and pool: counts by state and by current verdict. */
export async function poolCards(db: Db, config: Readonly<Config>): Promise<PoolCard[]> {
  const providers = await listProviders(db);
  const byId = new Map(providers.map((p) => [p.id, p]));
  const rows = await tokenCountsByPool(db);
  const cards = new Map<string, PoolCard>();
  const card = (p: Provider, pool: string) => {
    const key = `${p.name}/${pool}`;
    let c = cards.get(key);
    if (!c) {
      c = {
        provider: p.name,
        provider_kind: p.kind,
        provider_enabled: p.enabled,
        pool,
        tokens: 0,
        canaries: 0,
        states: { active: 0, suspect: 0, invalid: 0, disabled: 0 },
        verdicts: { live: 0, dead: 0, exhausted: 0, unknown: 0, unchecked: 0 },
        live_share: null,
        last_checked_at: null,
        low_balance: 0,
      };
      cards.set(key, c);
    }
    return c;
  };
  for (const r of rows) {
    const p = byId.get(r.providerId);
    if (!p) continue;
    const c = card(p, r.pool);
    c.tokens += r.n;
    c.canaries += r.canaries;
    c.states[r.state] += r.n;
    c.verdicts[r.verdict ?? 'unchecked'] += r.n;
    const last = r.lastCheckedAt?.toISOString() ?? null;
    if (last !== null && (c.last_checked_at === null || last > c.last_checked_at)) c.last_checked_at = last;
  }
  for (const c of cards.values()) {
    const checked = c.verdicts.live + c.verdicts.dead + c.verdicts.exhausted + c.verdicts.unknown;
    c.live_share = checked === 0 ? null : c.verdicts.live / checked;
  }
  if (config.lowBalance.size > 0) {
    for (const b of await poolBalances(db)) {
      const p = byId.get(b.providerId);
      if (p && isBelowThreshold(b.balance, b.currency, config.lowBalance)) card(p, b.pool).low_balance++;
    }
  }
  // A provider without tokens still gets a card, so that it can be checked and imported into.
  for (const p of providers) if (![...cards.values()].some((c) => c.provider === p.name)) card(p, 'default');
  return [...cards.values()].sort((a, b) => a.provider.localeCompare(b.provider) || a.pool.localeCompare(b.pool));
}

export interface DayShare {
  /** The UTC day, `YYYY-MM-DD`. */
  day: string;
  checks: number;
  live: number;
  /** live / checks; null on a day without checks. */
  share: number | null;
}

/** The UTC midnights that start each of the last `days` days (today included), oldest first. */
function dayStarts(days: number, now: Date): Date[] {
  const today = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  return Array.from({ length: days }, (_, i) => new Date(today - (days - 1 - i) * DAY_MS));
}

/**
 * The share of each day's checks that answered live, per provider and pool, for the last `days`
 * UTC days: the days already rolled up from `token_daily` (one row per token and day), the rest
 * (today, usually yesterday) from the raw checks, one bucket per day.
 */
export async function dailyLiveShare(
  db: Db,
  q: { providerId?: number; pool?: string; days: number; now?: Date },
): Promise<Map<string, DayShare[]>> {
  const starts = dayStarts(q.days, q.now ?? new Date());
  const rolledUntil = (await readState(db.kysely, ROLLED_UNTIL)) ?? Number.NEGATIVE_INFINITY;
  const firstRaw = Math.max(starts[0]!.getTime(), rolledUntil * DAY_MS);
  const rows = await liveCountsByBucket(db, { starts, from: new Date(firstRaw), providerId: q.providerId, pool: q.pool });
  if (firstRaw > starts[0]!.getTime()) {
    const day = (d: Date) => d.toISOString().slice(0, 10);
    const index = new Map(starts.map((d, i) => [day(d), i]));
    const rolled = await dailyLiveCounts(db, {
      from: day(starts[0]!),
      until: day(new Date(firstRaw)),
      providerId: q.providerId,
      pool: q.pool,
    });
    for (const r of rolled) {
      const i = index.get(r.day);
      if (i !== undefined) rows.push({ ...r, bucket: i });
    }
  }
  const out = new Map<string, DayShare[]>();
  for (const r of rows) {
    const key = `${r.provider}/${r.pool}`;
    let series = out.get(key);
    if (!series) {
      series = starts.map((d) => ({ day: d.toISOString().slice(0, 10), checks: 0, live: 0, share: null }));
      out.set(key, series);
    }
    const day = series[r.bucket]!;
    day.checks += r.checks;
    day.live += r.live;
    day.share = day.checks === 0 ? null : day.live / day.checks;
  }
  return out;
}

/** When the cron schedule fires next (TSCHK_CRON in TSCHK_TIMEZONE). */
export function nextScheduledRun(config: Readonly<Config>, now = new Date()): string | null {
  return new CronSchedule(config.cron, config.timezone).next(now)?.toISOString() ?? null;
}

export interface RunProgress {
  checked: number;
  /** Checked so far plus the tokens in its scope still due: exact once the run's batches are written. */
  total: number;
}

/**
 * A run in flight, with its progress. The run's row counts every batch written; what is still due
 * in its scope (by the same rule the run selects tokens with) makes up the rest of the total.
 */
export async function runInFlight(db: Db, config: Readonly<Config>) {
  const run = await latestRunningRun(db);
  if (!run) return null;
  return { ...runView(run, db.dialect), progress: await runProgress(db, config, run) };
}

export async function runProgress(db: Db, config: Readonly<Config>, run: CheckRunRow): Promise<RunProgress> {
  const checked = num(run.checked);
  if (run.status !== 'running') return { checked, total: checked };
  const lease = await readLease(db, 'run');
  const held = lease?.runId === Number(run.id) ? lease : undefined;
  const started = db.dialect.readTime(run.started_at) ?? new Date();
  const forced = held ? held.force || held.forcePrune : false;
  const checkedBefore = forced ? started : new Date(started.getTime() - config.minIntervalS * 1000);
  const providerIds = (await listProviders(db))
    .filter((p) => p.enabled && (held?.provider == null || p.name === held.provider))
    .map((p) => p.id);
  const due = (canaries: boolean) =>
    countDueTokens(db, {
      providerIds,
      checkedBefore,
      canaries,
      pool: canaries ? undefined : held?.pool || undefined,
      selection: canaries ? undefined : (held?.selection ?? undefined),
    });
  const remaining = (await due(false)) + (await due(true));
  return { checked, total: checked + remaining };
}

export type Warning =
  | { kind: 'held'; provider: string; run_id: number; held: number; reason: string }
  | { kind: 'unreachable'; provider: string; run_id: number }
  | { kind: 'canary'; provider: string; run_id: number }
  | { kind: 'provider_error'; provider: string; run_id: number; error: string }
  | { kind: 'low_balance'; provider: string; pool: string; tokens: number }
  | { kind: 'run_failed'; run_id: number; status: string; error: string | null };

/** What needs a human: each provider's latest outcome, low balances, a last run that did not finish well. */
export async function warnings(db: Db, cards: readonly PoolCard[]): Promise<Warning[]> {
  const out: Warning[] = [];
  const outcomes = (await lastProviderOutcomes(db)).sort((a, b) => a.provider_name.localeCompare(b.provider_name));
  const known = new Set(cards.map((c) => c.provider));
  for (const o of outcomes) {
    if (!known.has(o.provider_name)) continue;
    const base = { provider: o.provider_name, run_id: Number(o.run_id) };
    if (o.held_reason) out.push({ kind: 'held', ...base, held: num(o.held), reason: o.held_reason });
    if (Number(o.unreachable) === 1) out.push({ kind: 'unreachable', ...base });
    if (Number(o.unreliable) === 1) out.push({ kind: 'canary', ...base });
    if (o.error) out.push({ kind: 'provider_error', ...base, error: o.error });
  }
  for (const c of cards)
    if (c.low_balance > 0) out.push({ kind: 'low_balance', provider: c.provider, pool: c.pool, tokens: c.low_balance });
  const last = await lastFinishedRun(db);
  if (last && last.status !== 'done') out.push({ kind: 'run_failed', run_id: Number(last.id), status: last.status, error: last.error });
  return out;
}

export async function overview(db: Db, config: Readonly<Config>, now = new Date()) {
  const cards = await poolCards(db, config);
  const last = await lastFinishedRun(db);
  return {
    pools: cards,
    warnings: await warnings(db, cards),
    last_run: last ? runView(last, db.dialect) : null,
    running: await runInFlight(db, config),
    next_run_at: nextScheduledRun(config, now),
    cron: config.cron,
    prune: { mode: config.prune.mode, after: config.prune.after },
  };
}

/** The 30-day chart of every card, apart from the cards: it is the slow part until the rollups land. */
export async function overviewTrend(db: Db, days: number, now = new Date()) {
  const series = await dailyLiveShare(db, { days, now });
  return { days, series: Object.fromEntries(series) };
}

export { TOKEN_SORTS, type TokenSort };

export interface PoolPageQuery extends PoolTokensQuery {
  /** Checks shown in each token's strip. */
  strip: number;
}

export interface CheckBrief {
  verdict: Verdict;
  reason: string;
  checked_at: string | null;
  http_status: number | null;
  latency_ms: number | null;
  run_id: number | null;
}

/** The last checks of one token, newest first: one index range per token, however long its history. */
export async function recentChecks(db: Db, tokenId: number, limit: number): Promise<CheckBrief[]> {
  const rows = await recentVerdictsOfToken(db, tokenId, limit);
  return rows.map((r) => ({
    verdict: r.verdict,
    reason: r.reason,
    checked_at: isoTime(db.dialect, r.checked_at),
    http_status: r.http_status === null ? null : num(r.http_status),
    latency_ms: r.latency_ms === null ? null : num(r.latency_ms),
    run_id: r.run_id === null ? null : num(r.run_id),
  }));
}

/** One page of a pool's tokens, filtered and sorted in SQL, each with its last checks. */
export async function poolPage(db: Db, q: PoolPageQuery) {
  const { total, rows } = await poolTokenPage(db, q);
  const strips = await Promise.all(rows.map((t) => recentChecks(db, Number(t.id), q.strip)));
  return {
    total,
    tokens: rows.map((t, i) => {
      const checks = strips[i]!;
      return {
        ...tokenView(t, db.dialect, undefined),
        last_http_status: checks[0]?.http_status ?? null,
        last_latency_ms: checks[0]?.latency_ms ?? null,
        checks,
      };
    }),
  };
}

/** The reasons present in a pool (for the filter's choices), most frequent first. */
export async function poolReasons(db: Db, providerId: number, pool: string): Promise<Array<{ reason: string; tokens: number }>> {
  return (await poolReasonCounts(db, providerId, pool)).sort((a, b) => b.tokens - a.tokens || a.reason.localeCompare(b.reason));
}

/** How many tokens a bulk action would touch, and the highest id among them (the action stops there). */
export async function countMatching(
  db: Db,
  q: { providerId: number; pool: string; match: TokenMatch },
): Promise<{ count: number; max_id: number | null }> {
  const { count, maxId } = await countMatchingTokens(db, q);
  return { count, max_id: maxId };
}

export interface TokenDay {
  day: string;
  checks: number;
  live: number;
  dead: number;
  exhausted: number;
  unknown: number;
  latency_min: number | null;
  latency_avg: number | null;
  latency_max: number | null;
  last_reason: string | null;
  last_balance: string | null;
}

/**
 * A token's last `days` UTC days, newest first: the days already rolled up from `token_daily`,
 * the rest from its raw checks (one range of the (token_id, at) key), folded here.
 */
export async function tokenDays(db: Db, tokenId: number, days: number, now = new Date()): Promise<TokenDay[]> {
  const starts = dayStarts(days, now);
  const rolledUntil = (await readState(db.kysely, ROLLED_UNTIL)) ?? Number.NEGATIVE_INFINITY;
  const firstRaw = new Date(Math.max(starts[0]!.getTime(), rolledUntil * DAY_MS));
  const rolled = await tokenDailyRows(db, tokenId, starts[0]!.toISOString().slice(0, 10), firstRaw.toISOString().slice(0, 10));
  const rows = await tokenChecksSince(db, tokenId, firstRaw);
  const byDay = new Map<string, TokenDay & { latencySum: number; latencyN: number }>();
  for (const d of rolled) {
    const n = (v: unknown) => (v === null ? null : num(v));
    byDay.set(d.day, {
      day: d.day,
      checks: num(d.checks),
      live: num(d.live),
      dead: num(d.dead),
      exhausted: num(d.exhausted),
      unknown: num(d.unknown),
      latency_min: n(d.latency_min_ms),
      latency_avg: n(d.latency_avg_ms),
      latency_max: n(d.latency_max_ms),
      last_reason: d.last_reason,
      last_balance: d.last_balance === null ? null : d.last_currency ? `${d.last_balance} ${d.last_currency}` : d.last_balance,
      latencySum: 0,
      latencyN: 0,
    });
  }
  for (const r of rows) {
    const at = r.checkedAt;
    if (!at) continue;
    const day = at.toISOString().slice(0, 10);
    let d = byDay.get(day);
    if (!d) {
      d = {
        day,
        checks: 0,
        live: 0,
        dead: 0,
        exhausted: 0,
        unknown: 0,
        latency_min: null,
        latency_avg: null,
        latency_max: null,
        last_reason: null,
        last_balance: null,
        latencySum: 0,
        latencyN: 0,
      };
      byDay.set(day, d);
    }
    d.checks++;
    d[r.verdict]++;
    d.last_reason = r.reason;
    if (r.balance !== null) d.last_balance = r.currency ? `${r.balance} ${r.currency}` : r.balance;
    if (r.latencyMs !== null) {
      const ms = r.latencyMs;
      d.latency_min = d.latency_min === null ? ms : Math.min(d.latency_min, ms);
      d.latency_max = d.latency_max === null ? ms : Math.max(d.latency_max, ms);
      d.latencySum += ms;
      d.latencyN++;
      d.latency_avg = Math.round(d.latencySum / d.latencyN);
    }
  }
  return [...byDay.values()].reverse().map(({ latencySum: _s, latencyN: _n, ...d }) => d);
}

export type TokenEvent = {
  kind: TokenEventKind;
  at: string | null;
  run_id: number | null;
  reason: string | null;
  /** Who made the change: 'run', or 'console', 'api', 'cli' when a person did. */
  actor: EventActor | null;
};

/**
 * What happened to a token, oldest first, with the run (or the person) that caused it: its rows of
 * the event log, which outlive the raw checks. Every token that had its fingerprint in its
 * provider counts, so a token removed and restored (a new id) keeps its past.
 */
export async function tokenEvents(db: Db, token: Pick<TokenRow, 'id' | 'provider_id' | 'fingerprint'>): Promise<TokenEvent[]> {
  const rows = await listTokenEvents(db, { fingerprint: token.fingerprint, providerId: Number(token.provider_id), limit: 500 });
  return rows.reverse().map((e) => ({
    kind: e.event,
    at: isoTime(db.dialect, e.at),
    run_id: e.run_id === null ? null : num(e.run_id),
    reason: e.reason,
    actor: e.actor,
  }));
}

/** A token's page: the token (or its archive row, once removed), checks with evidence, days, events. */
export async function tokenPage(db: Db, id: number, now = new Date()) {
  const token = await findToken(db, id);
  const archive = await latestArchiveOfToken(db, id);
  if (!token && !archive) return undefined;
  const providers = await listProviders(db);
  const provider = token ? providers.find((p) => p.id === Number(token.provider_id)) : undefined;
  const checks = await latestChecksOfToken(db, id, 100);
  const subject = token ?? { id, provider_id: archive!.provider_id ?? -1, fingerprint: archive!.fingerprint };
  return {
    token: token ? tokenView(token, db.dialect, provider?.name) : null,
    archived: archive
      ? {
          id: Number(archive.id),
          provider: archive.provider_name,
          pool: archive.pool,
          ...describeSecret(archive.secret),
          label: archive.label,
          reason: archive.reason,
          last_verdict: archive.last_verdict,
          last_reason: archive.last_reason,
          archived_at: isoTime(db.dialect, archive.archived_at),
          restored_at: isoTime(db.dialect, archive.restored_at),
        }
      : null,
    checks: checks.map((h) => historyView(h, db.dialect)),
    days: await tokenDays(db, id, 30, now),
    events: await tokenEvents(db, subject),
  };
}

export async function runList(db: Db, q: { limit: number; beforeId?: number }) {
  return (await listRuns(db, q.limit, q.beforeId)).map((r) => runView(r, db.dialect));
}

interface TokenBrief {
  id: number;
  pool: string | null;
  mask: string | null;
  fingerprint: string;
}

const LISTED = 100;

/**
 * One run: its counts per provider, what was held and why, and the tokens whose state it changed,
 * from the event log. Who was confirmed dead (which, with TSCHK_PRUNE=off, changes no state and
 * writes no event) is read from each of the run's checks and that token's previous definite answers.
 */
export async function runDetail(db: Db, config: Readonly<Config>, id: number) {
  const run = await findRun(db, id);
  if (!run) return undefined;
  const checks = await runDefiniteChecks(db, id);
  const brief = (c: (typeof checks)[number]): TokenBrief => ({
    id: num(c.token_id),
    pool: c.pool ?? null,
    mask: c.secret == null ? null : mask(c.secret),
    fingerprint: c.fingerprint,
  });
  const list = () => ({ count: 0, tokens: [] as TokenBrief[] });
  const changes = { became_suspect: list(), confirmed_dead: list(), recovered: list(), pruned: list() };
  const add = (k: keyof typeof changes, t: TokenBrief) => {
    changes[k].count++;
    if (changes[k].tokens.length < LISTED) changes[k].tokens.push(t);
  };
  const deadInARow = config.prune.after;
  const confirmCandidates: Array<(typeof checks)[number]> = [];
  for (const c of checks) {
    if (c.verdict === 'dead' && c.previous !== 'dead') {
      if (deadInARow <= 1) add('confirmed_dead', brief(c));
    } else if (c.verdict === 'dead' && deadInARow > 1) confirmCandidates.push(c);
  }
  // Dead twice in a row or more: confirmed when the answers before make TSCHK_PRUNE_AFTER.
  for (const c of confirmCandidates) {
    if (deadInARow === 2) {
      add('confirmed_dead', brief(c));
      continue;
    }
    const before = await definiteVerdictsBefore(db, num(c.token_id), c.checked_at, deadInARow);
    const streak = 1 + before.findIndex((v) => v !== 'dead');
    const inARow = streak === 0 ? 1 + before.length : streak;
    if (inARow === deadInARow) add('confirmed_dead', brief(c));
  }
  // Who became suspect, recovered, or was flagged or pruned: the run's own rows of the event log.
  const kinds = { suspect: 'became_suspect', recovered: 'recovered', invalid: 'pruned', pruned: 'pruned' } as const;
  const events = await runEvents(db, id, Object.keys(kinds) as Array<keyof typeof kinds>);
  // Removed tokens are masked from their archive row; no list shows more than LISTED of its four kinds.
  const gone = events
    .filter((e) => e.secret === null && e.token_id !== null)
    .map((e) => num(e.token_id))
    .slice(0, 4 * LISTED);
  const archived = await archivedSecrets(db, gone);
  for (const e of events) {
    const tokenId = e.token_id === null ? null : num(e.token_id);
    const secret = e.secret ?? (tokenId === null ? undefined : archived.get(tokenId));
    add(kinds[e.event as keyof typeof kinds], {
      id: tokenId ?? 0,
      pool: e.pool,
      mask: secret ? mask(secret) : null,
      fingerprint: e.fingerprint ?? '',
    });
  }
  const providers = (await findRunProviders(db, id)).map((p) => ({
    provider: p.provider_name,
    ...Object.fromEntries(['checked', ...VERDICTS, 'pruned', 'held'].map((k) => [k, num(p[k as keyof typeof p])])),
    unreachable: Number(p.unreachable) === 1,
    unreliable: Number(p.unreliable) === 1,
    held_reason: p.held_reason,
    error: p.error,
  }));
  return { run: { ...runView(run, db.dialect), progress: await runProgress(db, config, run) }, providers, changes };
}

/** The tokens the held pruning of a provider's last run would take: what `--force-prune` acts on after checking them again. */
export async function heldPruning(db: Db, config: Readonly<Config>, provider: Provider) {
  const outcome = (await lastProviderOutcomes(db)).find((o) => Number(o.provider_id) === provider.id);
  if (!outcome || !outcome.held_reason) return { run_id: outcome ? Number(outcome.run_id) : null, held_reason: null, count: 0, tokens: [] };
  const query: CandidateQuery = {
    runId: Number(outcome.run_id),
    providerId: provider.id,
    after: config.prune.after,
    states: config.prune.mode === 'delete' ? ['active', 'suspect', 'invalid'] : ['active', 'suspect'],
    verdicts: config.prune.exhausted ? ['dead', 'exhausted'] : ['dead'],
  };
  const tokens = await pruneCandidates(db, { ...query, afterId: 0, limit: LISTED });
  return {
    run_id: Number(outcome.run_id),
    held_reason: outcome.held_reason,
    count: await countPruneCandidates(db, query),
    tokens: tokens.map((t) => ({ id: Number(t.id), pool: t.pool, ...describeSecret(t.secret), label: t.label })),
  };
}

/** Removed tokens, newest first; the restored ones only when asked. */
export async function archivePage(db: Db, q: { text?: string; restored: boolean; offset: number; limit: number }) {
  const { total, rows } = await searchArchive(db, q);
  return {
    total,
    entries: rows.map((a) => ({
      id: Number(a.id),
      token_id: a.token_id === null ? null : Number(a.token_id),
      provider: a.provider_name,
      pool: a.pool,
      ...describeSecret(a.secret),
      label: a.label,
      reason: a.reason,
      last_verdict: a.last_verdict,
      last_reason: a.last_reason,
      archived_at: isoTime(db.dialect, a.archived_at),
      restored_at: isoTime(db.dialect, a.restored_at),
    })),
  };
}
