import { CompiledQuery } from 'kysely';
import type { Db } from './connect.js';
import type { DialectProfile } from './dialect.js';
import { renewLease } from './lease.js';
import { verdictsByRun } from './runs.js';
import type { TokenState, TokenStatusRow, Verdict } from './schema.js';

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
 */
export async function recordChecks(db: Db, records: readonly CheckRecord[], opts: RecordOptions = {}): Promise<void> {
  if (records.length === 0) return;
  await db.kysely.transaction().execute(async (trx) => {
    if (opts.lease && !(await renewLease(db, 'run', opts.lease.holderId, opts.lease.ttlMs, trx))) throw new LeaseLostError();
    for (const [runId, c] of verdictsByRun(records)) {
      await trx
        .updateTable('check_runs')
        .set((eb) => ({
          checked: eb('checked', '+', c.live + c.dead + c.exhausted + c.unknown),
          live: eb('live', '+', c.live),
          dead: eb('dead', '+', c.dead),
          exhausted: eb('exhausted', '+', c.exhausted),
          unknown: eb('unknown', '+', c.unknown),
        }))
        .where('id', '=', runId)
        .execute();
    }
    for (let i = 0; i < records.length; i += CHUNK) {
      const chunk = records.slice(i, i + CHUNK);
      if (i > 0) await nextTurn();
      await trx.executeQuery(insertHistory(db.dialect, chunk));
      await nextTurn();
      await trx.executeQuery(updateTokenStates(db.dialect, chunk));
    }
  });
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
function idLiteral(id: number): string {
  if (!Number.isSafeInteger(id)) throw new Error(`not a token id: ${id}`);
  return String(id);
}

const HISTORY_COLUMNS = 'run_id, token_id, provider_id, fingerprint, checked_at, verdict, reason, http_status, latency_ms, balance, currency, detail';

function insertHistory(d: DialectProfile, records: readonly CheckRecord[]): CompiledQuery {
  const p = new Params(d);
  const rows = records.map((r) =>
    [r.runId, r.tokenId, r.providerId, r.fingerprint, d.time(r.checkedAt), r.verdict, r.reason, r.httpStatus, r.latencyMs, r.balance, r.currency, r.detail]
      .map((v) => p.add(v))
      .join(', '),
  );
  return CompiledQuery.raw(`insert into token_status (${HISTORY_COLUMNS}) values (${rows.join('), (')})`, p.values);
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
  const set = [...columns].filter(([, values]) => values.length > 0).map(([column, values]) => {
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
  limit: number;
}

export async function listHistory(db: Db, q: HistoryQuery): Promise<TokenStatusRow[]> {
  let query = db.kysely.selectFrom('token_status').selectAll();
  if (q.providerId !== undefined) query = query.where('provider_id', '=', q.providerId);
  if (q.tokenId !== undefined) query = query.where('token_id', '=', q.tokenId);
  return query.orderBy('id', 'desc').limit(q.limit).execute();
}

/** Deletes history older than the cutoff; returns how many rows went. */
export async function trimHistory(db: Db, olderThan: Date): Promise<number> {
  const r = await db.kysely.deleteFrom('token_status').where('checked_at', '<', db.dialect.time(olderThan)).executeTakeFirst();
  return Number(r.numDeletedRows);
}
