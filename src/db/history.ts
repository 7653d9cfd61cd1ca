import { CompiledQuery, sql, type Transaction } from 'kysely';
import { VERDICT_CODES } from '../../migrations/dialect.js';
import type { Db, Executor } from './connect.js';
import { idLiteral, num, type DialectProfile } from './dialect.js';
import { recordTokenEvents, type TokenEvent } from './events.js';
import { renewLease } from './lease.js';
import { verdictsByRun } from './runs.js';
import type { Database, TokenEventKind, TokenState, TokenStatusRow, Verdict } from './schema.js';

export { VERDICT_CODES };

/** One check, as it is written: a history row and the token's new state. */
export interface CheckRecord {
  runId: number | null;
  tokenId: number;
  providerId: number;
  fingerprint: string;
  checkedAt: Date;
  verdict: Verdict;
  reason: string;
  httpStatus: number | null;
  latencyMs: number | null;
  balance: string | null;
  currency: string | null;
  detail: string | null;
  /** The token's state as the run read it: the new state applies only if nobody changed it since. */
  prev: { state: TokenState; consecutiveDead: number };
  next: { state: TokenState; consecutiveDead: number; invalidSince: Date | null | undefined };
}

/** The run's lease was taken by another process: this process must not write for that run any more. */
export class LeaseLostError extends Error {
  override name = 'LeaseLostError';
  constructor() {
    super('the run lease was lost: another process took over after this one stopped renewing it');
  }
}

export interface RecordOptions {
  /** Writes only while this holder has the run lease, and renews it. */
  lease?: { holderId: string; ttlMs: number };
}

/**
 * Rows per statement. A batch is written a chunk at a time with a turn of the event loop between
 * chunks: on SQLite every statement blocks the thread, and one 500-row batch in a single stretch
 * held back the answers of all checks in flight for ~8 ms (a few per cent of a run's throughput).
 */
const CHUNK = 50;

/**
 * Writes a batch in one transaction: committed together or not at all, with the run's counts
 * moved on by the same transaction, so that a run row always matches the history carrying its id.
 * The same transaction gives the rows their ids, notes first-time tokens in `history_tokens`, and
 * writes an event for every token whose state the batch changed.
 */
export async function recordChecks(db: Db, records: readonly CheckRecord[], opts: RecordOptions = {}): Promise<void> {
  if (records.length === 0) return;
  // Outside the transaction: a reason code, once known, must exist even if this batch rolls back.
  const reasons = await reasonCodes(
    db,
    records.map((r) => r.reason),
  );
  // As late as it can be. A batch already queued for the connection behind a keeper's step still
  // starts before that step's copy asks writes to wait: the copy then cannot empty the WAL, no more.
  await db.writePause.wait();
  await db.kysely.transaction().execute(async (trx) => {
    if (opts.lease && !(await renewLease(db, 'run', opts.lease.holderId, opts.lease.ttlMs, trx))) throw new LeaseLostError();
    const firstAt = firstCheckOfRun(records);
    for (const [runId, c] of verdictsByRun(records)) {
      const from = db.dialect.historyTime(firstAt.get(runId)!);
      await trx
        .updateTable('check_runs')
        .set((eb) => ({
          checked: eb('checked', '+', c.live + c.dead + c.exhausted + c.unknown),
          live: eb('live', '+', c.live),
          dead: eb('dead', '+', c.dead),
          exhausted: eb('exhausted', '+', c.exhausted),
          unknown: eb('unknown', '+', c.unknown),
          history_from: eb
            .case()
            .when('history_from', 'is', null)
            .then(from)
            .when('history_from', '>', from)
            .then(from)
            .else(eb.ref('history_from'))
            .end(),
        }))
        .where('id', '=', runId)
        .execute();
    }
    const firstId = await allocateCheckIds(trx, records.length);
    await noteHistoryTokens(db, trx, records);
    for (let i = 0; i < records.length; i += CHUNK) {
      const chunk = records.slice(i, i + CHUNK);
      if (i > 0) await nextTurn();
      await trx.executeQuery(
        insertChecks(
          db.dialect,
          chunk.map((r, j) => ({ ...r, at: r.checkedAt, id: firstId + i + j })),
          reasons,
        ),
      );
      await nextTurn();
      await trx.executeQuery(updateTokenStates(db.dialect, chunk));
      await recordTransitions(db, trx, chunk);
    }
  });
}

export const NEXT_CHECK_ID = 'next_check_id';

function firstCheckOfRun(records: readonly CheckRecord[]): Map<number, Date> {
  const first = new Map<number, Date>();
  for (const r of records) {
    if (r.runId === null) continue;
    const seen = first.get(r.runId);
    if (!seen || r.checkedAt < seen) first.set(r.runId, r.checkedAt);
  }
  return first;
}

/** Ids for `n` rows, from the counter row: one UPDATE per batch, in the batch's transaction. */
async function allocateCheckIds(trx: Transaction<Database>, n: number): Promise<number> {
  await trx
    .updateTable('history_state')
    .set((eb) => ({ value: eb('value', '+', n) }))
    .where('name', '=', NEXT_CHECK_ID)
    .execute();
  const row = await trx.selectFrom('history_state').select('value').where('name', '=', NEXT_CHECK_ID).executeTakeFirst();
  if (!row || row.value === null) throw new Error('history_state has no next_check_id row: run tschk migrate');
  return num(row.value) - n;
}

/**
 * Tokens checked for the first time get their `history_tokens` row (fingerprint, provider, pool),
 * which stays after the token is removed: what finds a removed token's history by fingerprint.
 * The database tells which are new: a set of the ids seen, kept by the process, grew with the
 * pool (5 MB at 200 000 tokens) and, live, raised how far V8 lets the heap grow between full GCs.
 */
async function noteHistoryTokens(db: Db, trx: Transaction<Database>, records: readonly CheckRecord[]): Promise<void> {
  const ids = [...new Set(records.map((r) => r.tokenId))];
  for (let i = 0; i < ids.length; i += 500) {
    // A plain read, then an insert only when some are new: an INSERT … SELECT would take InnoDB's
    // shared locks on the rows and gaps it reads in every batch, at REPEATABLE READ.
    const fresh = await trx
      .selectFrom('tokens as t')
      .leftJoin('history_tokens as k', 'k.token_id', 't.id')
      .select(['t.id', 't.provider_id', 't.pool', 't.fingerprint'])
      .where('t.id', 'in', ids.slice(i, i + 500))
      .where('k.token_id', 'is', null)
      .execute();
    if (fresh.length === 0) continue;
    const values = fresh.map((t) => ({ token_id: t.id, provider_id: t.provider_id, pool: t.pool, fingerprint: t.fingerprint }));
    await db.dialect.ignoreDuplicates(trx.insertInto('history_tokens').values(values)).execute();
  }
}

/** The event a check's new state is, if any. */
function transitionEvent(r: CheckRecord): TokenEventKind | undefined {
  if (r.next.state === r.prev.state) return undefined;
  if (r.next.state === 'suspect') return 'suspect';
  if (r.next.state === 'invalid') return 'invalid';
  if (r.next.state === 'active') return 'recovered';
  return undefined;
}

/**
 * Events for the tokens whose state this chunk changed. A state change applies only if nobody
 * changed the token since the run read it: the event is written only where the token now has the
 * new state.
 */
async function recordTransitions(db: Db, trx: Transaction<Database>, records: readonly CheckRecord[]): Promise<void> {
  const changed = new Map<number, CheckRecord>();
  for (const r of records) {
    if (transitionEvent(r)) changed.set(r.tokenId, r);
    else changed.delete(r.tokenId);
  }
  if (changed.size === 0) return;
  const now = await trx
    .selectFrom('tokens')
    .select(['id', 'state', 'pool'])
    .where('id', 'in', [...changed.keys()])
    .execute();
  const events: TokenEvent[] = [];
  for (const t of now) {
    const r = changed.get(Number(t.id))!;
    if (t.state !== r.next.state) continue;
    events.push({
      at: r.checkedAt,
      event: transitionEvent(r)!,
      tokenId: r.tokenId,
      fingerprint: r.fingerprint,
      providerId: r.providerId,
      pool: t.pool,
      runId: r.runId,
      reason: r.prev.state === 'invalid' ? `${r.reason} (was invalid)` : r.reason,
      actor: 'run',
    });
  }
  await recordTokenEvents(db, events, trx);
}

/** Reason codes, from a cache per database; new reasons are added (by any process: duplicates are skipped). */
export async function reasonCodes(db: Db, reasons: Iterable<string>): Promise<Map<string, number>> {
  let cache = reasonCache.get(db.kysely);
  if (!cache) reasonCache.set(db.kysely, (cache = new Map<string, number>()));
  const missing = [...new Set(reasons)].filter((r) => !cache.has(r));
  if (missing.length > 0) {
    await db.dialect
      .ignoreDuplicates(db.kysely.insertInto('history_reasons').values(missing.map((reason) => ({ reason: reason.slice(0, 64) }))))
      .execute();
    for (const row of await db.kysely
      .selectFrom('history_reasons')
      .select(['id', 'reason'])
      .where(
        'reason',
        'in',
        missing.map((r) => r.slice(0, 64)),
      )
      .execute()) {
      cache.set(row.reason, Number(row.id));
    }
    for (const r of missing) if (r.length > 64) cache.set(r, cache.get(r.slice(0, 64))!);
  }
  return cache;
}

const reasonCache = new WeakMap<object, Map<string, number>>();

/** Reason texts by code. */
export async function reasonNames(db: Db): Promise<Map<number, string>> {
  const rows = await db.kysely.selectFrom('history_reasons').select(['id', 'reason']).execute();
  return new Map(rows.map((r) => [Number(r.id), r.reason]));
}

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

// The two statements of the hot path are written out rather than built with the query builder:
// building and compiling them allocated a third of all the memory a run churns through (GC time
// on the event loop). The SQL is the builder's own, with the dialect's placeholders.

/** Bound values and their placeholders (`?`, or `$1, $2, …` on PostgreSQL). */
class Params {
  readonly values: unknown[] = [];
  constructor(private readonly dialect: DialectProfile) {}
  add(value: unknown): string {
    this.values.push(value);
    return this.dialect.placeholder(this.values.length);
  }
}

/** A token id, written into the SQL as a literal like the query builder's `sql.lit` did: it must be an integer. */
const HISTORY_COLUMNS = 'token_id, at, id, provider_id, run_id, verdict, reason_id, http_status, latency_ms, balance, currency, detail';

/** One check as `history_checks` stores it. */
export interface StoredCheck {
  tokenId: number;
  at: Date;
  id: number;
  providerId: number;
  runId: number | null;
  verdict: Verdict;
  reason: string;
  httpStatus: number | null;
  latencyMs: number | null;
  balance: string | null;
  currency: string | null;
  detail: string | null;
}

export function insertChecks(d: DialectProfile, rows: readonly StoredCheck[], reasons: ReadonlyMap<string, number>): CompiledQuery {
  const p = new Params(d);
  const values = rows.map((r) => {
    const reason = reasons.get(r.reason);
    if (reason === undefined) throw new Error(`no code for reason '${r.reason}'`);
    return [
      r.tokenId,
      d.historyTime(r.at),
      r.id,
      r.providerId,
      r.runId,
      VERDICT_CODES[r.verdict],
      reason,
      r.httpStatus,
      r.latencyMs,
      r.balance,
      r.currency,
      r.detail,
    ]
      .map((v) => p.add(v))
      .join(', ');
  });
  return CompiledQuery.raw(`insert into history_checks (${HISTORY_COLUMNS}) values (${values.join('), (')})`, p.values);
}

/** In SET order: the columns whose new value is guarded by `state` and `consecutive_dead` come before those two. */
const STATE_COLUMNS = [
  'invalid_since',
  'state',
  'consecutive_dead',
  'last_verdict',
  'last_reason',
  'last_checked_at',
  'last_live_at',
  'balance',
  'currency',
  'updated_at',
] as const;
type TokenStateColumn = (typeof STATE_COLUMNS)[number];

/**
 * A value, or SQL that reads the row being updated. The SQL is written when the statement is,
 * so that its parameters take their places in order (`?` placeholders are positional).
 */
type SetValue = { value: unknown } | { sql: (p: Params) => string };

/**
 * The new state of many tokens in one UPDATE: one statement per token was the largest cost of a
 * run. A column only some tokens change is `CASE id WHEN … THEN … ELSE column END`; the ELSE
 * also gives PostgreSQL the type of the parameters. A token twice in the batch keeps its last check.
 *
 * What a check does to the count is written as SQL (`consecutive_dead + 1`, or 0), not as a value
 * computed from the row the run read; and a new `state` or `invalid_since` applies only where the
 * row still has the state and count the run read. A check written by another process in between
 * is then neither overwritten nor lost. The guarded columns come first in the SET list: MySQL
 * reads the values already set by the items before.
 */
function updateTokenStates(d: DialectProfile, records: readonly CheckRecord[]): CompiledQuery {
  const latest = new Map(records.map((r) => [r.tokenId, r]));
  const columns = new Map<TokenStateColumn, Array<[number, SetValue]>>(STATE_COLUMNS.map((c) => [c, []]));
  const put = (column: TokenStateColumn, id: number, v: SetValue) => columns.get(column)!.push([id, v]);
  for (const [id, r] of latest) {
    const ifUnchangedSinceRead = (column: string, value: unknown) => (p: Params) =>
      `CASE WHEN consecutive_dead = ${p.add(r.prev.consecutiveDead)} AND state = ${p.add(r.prev.state)} THEN ${p.add(value)} ELSE ${column} END`;
    if (r.next.state !== r.prev.state) put('state', id, { sql: ifUnchangedSinceRead('state', r.next.state) });
    if (r.next.invalidSince !== undefined) {
      put('invalid_since', id, { sql: ifUnchangedSinceRead('invalid_since', r.next.invalidSince && d.time(r.next.invalidSince)) });
    }
    if (r.next.consecutiveDead > r.prev.consecutiveDead) put('consecutive_dead', id, { sql: () => 'consecutive_dead + 1' });
    else if (r.next.consecutiveDead === 0 && r.prev.consecutiveDead !== 0) put('consecutive_dead', id, { value: 0 });
  }
  for (const [id, r] of latest) {
    const at = d.time(r.checkedAt);
    put('last_verdict', id, { value: r.verdict });
    put('last_reason', id, { value: r.reason });
    put('last_checked_at', id, { value: at });
    put('updated_at', id, { value: at });
    if (r.verdict === 'live') put('last_live_at', id, { value: at });
    if (r.verdict === 'live' || r.verdict === 'exhausted' || r.balance !== null) {
      put('balance', id, { value: r.balance });
      put('currency', id, { value: r.currency });
    }
  }
  const p = new Params(d);
  const expr = (v: SetValue) => ('sql' in v ? v.sql(p) : p.add(v.value));
  const set = [...columns]
    .filter(([, values]) => values.length > 0)
    .map(([column, values]) => {
      const first = values[0]![1];
      return values.length === latest.size && 'value' in first && values.every(([, v]) => 'value' in v && sameValue(v.value, first.value))
        ? `${column} = ${p.add(first.value)}`
        : `${column} = CASE id ${values.map(([id, v]) => `WHEN ${idLiteral(id)} THEN ${expr(v)}`).join(' ')} ELSE ${column} END`;
    });
  const ids = [...latest.keys()].map(idLiteral).join(', ');
  return CompiledQuery.raw(`update tokens set ${set.join(', ')} where id in (${ids})`, p.values);
}

function sameValue(a: unknown, b: unknown): boolean {
  return a instanceof Date && b instanceof Date ? a.getTime() === b.getTime() : a === b;
}

export interface HistoryQuery {
  providerId?: number;
  tokenId?: number;
  /** Every token that had this fingerprint, removed ones included. */
  fingerprint?: string;
  limit: number;
}

const WORDS = Object.fromEntries(Object.entries(VERDICT_CODES).map(([word, code]) => [code, word])) as Record<number, Verdict>;

export function verdictWord(code: unknown): Verdict {
  return WORDS[num(code)] ?? 'unknown';
}

/** A stored time as `token_status` shows it: ISO text on SQLite, the driver's Date elsewhere. */
function shownTime(d: DialectProfile, v: unknown): Date | string {
  const t = d.readTime(v) ?? new Date(NaN);
  return d.name === 'sqlite' ? t.toISOString() : t;
}

/**
 * Recent checks, newest first, in the shape of a `token_status` row. Reads the tables rather than
 * the view: on SQLite the view's `checked_at` is text computed per row, which no index can order.
 */
export async function listHistory(db: Db, q: HistoryQuery): Promise<TokenStatusRow[]> {
  let query = db.kysely
    .selectFrom('history_checks as c')
    .leftJoin('history_tokens as k', 'k.token_id', 'c.token_id')
    .leftJoin('history_reasons as r', 'r.id', 'c.reason_id')
    .select([
      'c.id',
      'c.run_id',
      'c.token_id',
      'c.provider_id',
      'k.fingerprint',
      'c.at',
      'c.verdict',
      'r.reason',
      'c.http_status',
      'c.latency_ms',
      'c.balance',
      'c.currency',
      'c.detail',
    ]);
  if (q.tokenId !== undefined) query = query.where('c.token_id', '=', q.tokenId);
  if (q.providerId !== undefined) query = query.where('c.provider_id', '=', q.providerId);
  if (q.fingerprint !== undefined) {
    const fp = q.fingerprint;
    query = query.where('c.token_id', 'in', (eb) => eb.selectFrom('history_tokens').select('token_id').where('fingerprint', '=', fp));
  }
  const rows = await query.orderBy('c.at', 'desc').orderBy('c.id', 'desc').limit(q.limit).execute();
  return rows.map((h): TokenStatusRow => ({
    id: num(h.id),
    run_id: h.run_id === null ? null : num(h.run_id),
    token_id: num(h.token_id),
    provider_id: num(h.provider_id),
    fingerprint: h.fingerprint ?? '',
    checked_at: shownTime(db.dialect, h.at),
    verdict: verdictWord(h.verdict),
    reason: h.reason ?? '',
    http_status: h.http_status === null ? null : num(h.http_status),
    latency_ms: h.latency_ms === null ? null : num(h.latency_ms),
    balance: h.balance,
    currency: h.currency,
    detail: h.detail,
  }));
}

/** Whether any check of a token with this fingerprint was ever recorded (it may be removed since). */
export async function fingerprintHasHistory(db: Db, fingerprint: string): Promise<boolean> {
  return (
    (await db.kysely.selectFrom('history_tokens').select('token_id').where('fingerprint', '=', fingerprint).limit(1).executeTakeFirst()) !==
    undefined
  );
}

/**
 * The checks of a run, to select from or to use as a subquery: read from the time index, from
 * the run's first check on (a run older than the column reads the whole index).
 */
export async function checksOfRun(db: Db, runId: number, verdicts?: readonly Verdict[]) {
  const run = await db.kysely.selectFrom('check_runs').select('history_from').where('id', '=', runId).executeTakeFirst();
  const from = db.dialect.readTime(run?.history_from ?? null);
  let q = db.kysely.selectFrom('history_checks').where('run_id', '=', runId);
  if (from) q = q.where('at', '>=', db.dialect.historyTime(from));
  if (verdicts)
    q = q.where(
      'verdict',
      'in',
      verdicts.map((v) => VERDICT_CODES[v]),
    );
  return q;
}

/** A run's verdicts, counted from the history rows that carry its id. */
export async function countRunVerdicts(db: Db, runId: number): Promise<Record<Verdict, number>> {
  const counts = { live: 0, dead: 0, exhausted: 0, unknown: 0 };
  const rows = await (
    await checksOfRun(db, runId)
  )
    .select(['verdict', (eb) => eb.fn.countAll().as('n')])
    .groupBy('verdict')
    .execute();
  for (const r of rows) counts[verdictWord(r.verdict)] += num(r.n);
  return counts;
}

/** Each token's latency in a run (One-API's `response_time`). */
export async function runLatencies(db: Db, runId: number): Promise<Map<number, number>> {
  const rows = await (await checksOfRun(db, runId)).select(['token_id', 'latency_ms']).execute();
  return new Map(rows.map((h) => [num(h.token_id), num(h.latency_ms ?? 0)]));
}

/** A check in the shape of a `token_status` row, for `appendHistory`. */
export interface HistoryRowInput {
  run_id: number | null;
  token_id: number;
  provider_id: number;
  fingerprint: string;
  checked_at: Date;
  verdict: Verdict;
  reason: string;
  http_status: number | null;
  latency_ms: number | null;
  balance: string | null;
  currency: string | null;
  detail: string | null;
  pool?: string | null;
}

/**
 * Appends checks as they are, without touching `tokens` or `check_runs`: for loading history
 * from elsewhere (seeding a benchmark, a demo). Tokens met first keep the provider and
 * fingerprint given here.
 */
export async function appendHistory(db: Db, rows: readonly HistoryRowInput[]): Promise<void> {
  if (rows.length === 0) return;
  const reasons = await reasonCodes(
    db,
    rows.map((r) => r.reason),
  );
  await db.kysely.transaction().execute(async (trx) => {
    const tokens = new Map(
      rows.map((r) => [r.token_id, { token_id: r.token_id, provider_id: r.provider_id, pool: r.pool ?? null, fingerprint: r.fingerprint }]),
    );
    const list = [...tokens.values()];
    for (let i = 0; i < list.length; i += 500)
      await db.dialect.ignoreDuplicates(trx.insertInto('history_tokens').values(list.slice(i, i + 500))).execute();
    const firstId = await allocateCheckIds(trx, rows.length);
    const checks = rows.map((r, i): StoredCheck => ({
      tokenId: r.token_id,
      at: r.checked_at,
      id: firstId + i,
      providerId: r.provider_id,
      runId: r.run_id,
      verdict: r.verdict,
      reason: r.reason,
      httpStatus: r.http_status,
      latencyMs: r.latency_ms,
      balance: r.balance,
      currency: r.currency,
      detail: r.detail,
    }));
    for (let i = 0; i < checks.length; i += 200) await trx.executeQuery(insertChecks(db.dialect, checks.slice(i, i + 200), reasons));
  });
}

/** A token's last checks, newest first: one index range, however long its history. */
function latestOfToken(db: Executor, tokenId: number, limit: number) {
  return db.kysely
    .selectFrom('token_status')
    .where('token_id', '=', tokenId)
    .orderBy('checked_at', 'desc')
    .orderBy('id', 'desc')
    .limit(limit);
}

/** A token's last checks from `token_status`, newest first. */
export async function latestChecksOfToken(db: Executor, tokenId: number, limit: number): Promise<TokenStatusRow[]> {
  return latestOfToken(db, tokenId, limit).selectAll().execute();
}

/** A token's last checks, without their evidence (a strip of verdicts). */
export async function recentVerdictsOfToken(db: Executor, tokenId: number, limit: number) {
  return latestOfToken(db, tokenId, limit).select(['verdict', 'reason', 'checked_at', 'http_status', 'latency_ms', 'run_id']).execute();
}

export interface LiveByBucketQuery {
  /** The start of each bucket, oldest first; checks before `from` are not counted. */
  starts: readonly Date[];
  from: Date;
  providerId?: number;
  pool?: string;
}

/**
 * Checks and live answers per provider, pool and time bucket, from the raw checks in the time
 * index, bucketed by a CASE on the boundaries so that no dialect's date functions are needed.
 */
export async function liveCountsByBucket(
  db: Executor,
  q: LiveByBucketQuery,
): Promise<Array<{ provider: string; pool: string; bucket: number; checks: number; live: number }>> {
  const h = (d: Date) => db.dialect.historyTime(d);
  const bucket = sql.join(
    q.starts.slice(1).map((d, i) => sql`when c.at < ${h(d)} then ${i}`),
    sql` `,
  );
  let raw = db.kysely
    .selectFrom('history_checks as c')
    .innerJoin('tokens as t', 't.id', 'c.token_id')
    .innerJoin('providers as p', 'p.id', 'c.provider_id')
    .select((eb) => [
      'p.name as provider',
      't.pool as pool',
      sql<number>`case ${bucket} else ${q.starts.length - 1} end`.as('bucket'),
      eb.fn.countAll().as('checks'),
      eb.fn.sum<number>(eb.case().when('c.verdict', '=', VERDICT_CODES.live).then(1).else(0).end()).as('live'),
    ])
    .where('c.at', '>=', h(q.from))
    .groupBy(['p.name', 't.pool', 'bucket']);
  if (q.providerId !== undefined) raw = raw.where('c.provider_id', '=', q.providerId);
  if (q.pool !== undefined) raw = raw.where('t.pool', '=', q.pool);
  return (await raw.execute()).map((r) => ({
    provider: r.provider,
    pool: r.pool,
    bucket: num(r.bucket),
    checks: num(r.checks),
    live: num(r.live),
  }));
}

/** A token's checks since `from`, oldest first (one range of the (token_id, at) key). */
export async function tokenChecksSince(db: Executor, tokenId: number, from: Date) {
  const rows = await db.kysely
    .selectFrom('history_checks as c')
    .select([
      'c.at',
      'c.verdict',
      (eb) => eb.selectFrom('history_reasons as r').select('r.reason').whereRef('r.id', '=', 'c.reason_id').as('reason'),
      'c.latency_ms',
      'c.balance',
      'c.currency',
    ])
    .where('c.token_id', '=', tokenId)
    .where('c.at', '>=', db.dialect.historyTime(from))
    .orderBy('c.at')
    .orderBy('c.id')
    .execute();
  return rows.map((r) => ({
    checkedAt: db.dialect.readTime(r.at),
    verdict: verdictWord(r.verdict),
    reason: r.reason,
    latencyMs: r.latency_ms === null ? null : num(r.latency_ms),
    balance: r.balance,
    currency: r.currency,
  }));
}

/** A run's live and dead answers, in order, each with the token's previous definite verdict. */
export async function runDefiniteChecks(db: Executor, runId: number) {
  return db.kysely
    .selectFrom('token_status as s')
    .leftJoin('tokens as t', 't.id', 's.token_id')
    .select((eb) => [
      's.token_id',
      's.fingerprint',
      's.verdict',
      's.checked_at',
      't.pool',
      't.secret',
      eb
        .selectFrom('token_status as p')
        .select('p.verdict')
        .whereRef('p.token_id', '=', 's.token_id')
        .whereRef('p.checked_at', '<', 's.checked_at')
        .where('p.verdict', '!=', 'unknown')
        .orderBy('p.checked_at', 'desc')
        .limit(1)
        .as('previous'),
    ])
    .where('s.run_id', '=', runId)
    .where('s.verdict', 'in', ['live', 'dead'])
    .orderBy('s.id')
    .execute();
}

/** A token's last `limit` definite verdicts before a time, newest first. */
export async function definiteVerdictsBefore(db: Executor, tokenId: number, before: Date | string, limit: number): Promise<Verdict[]> {
  const rows = await db.kysely
    .selectFrom('token_status')
    .select('verdict')
    .where('token_id', '=', tokenId)
    .where('checked_at', '<', before)
    .where('verdict', '!=', 'unknown')
    .orderBy('checked_at', 'desc')
    .limit(limit)
    .execute();
  return rows.map((r) => r.verdict);
}
