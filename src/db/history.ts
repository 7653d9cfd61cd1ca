import { CompiledQuery } from 'kysely';
import type { Db } from './connect.js';
import type { DialectProfile } from './dialect.js';
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
  next: { state: TokenState; consecutiveDead: number; invalidSince: Date | null | undefined };
}

/**
 * Rows per statement. A batch is written a chunk at a time with a turn of the event loop between
 * chunks: on SQLite every statement blocks the thread, and one 500-row batch in a single stretch
 * held back the answers of all checks in flight for ~8 ms (a few per cent of a run's throughput).
 */
const CHUNK = 50;

/** Writes a batch in one transaction: committed together or not at all. */
export async function recordChecks(db: Db, records: readonly CheckRecord[]): Promise<void> {
  if (records.length === 0) return;
  await db.kysely.transaction().execute(async (trx) => {
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

type TokenStateColumn =
  | 'state'
  | 'consecutive_dead'
  | 'last_verdict'
  | 'last_reason'
  | 'last_checked_at'
  | 'last_live_at'
  | 'invalid_since'
  | 'balance'
  | 'currency'
  | 'updated_at';

/**
 * The new state of many tokens in one UPDATE: one statement per token was the largest cost of a
 * run. A column only some tokens change is `CASE id WHEN … THEN … ELSE column END`; the ELSE
 * also gives PostgreSQL the type of the parameters. A token twice in the batch keeps its last check.
 */
function updateTokenStates(d: DialectProfile, records: readonly CheckRecord[]): CompiledQuery {
  const latest = new Map(records.map((r) => [r.tokenId, r]));
  const columns = new Map<TokenStateColumn, Array<[number, unknown]>>();
  const put = (column: TokenStateColumn, id: number, value: unknown) => {
    let values = columns.get(column);
    if (!values) columns.set(column, (values = []));
    values.push([id, value]);
  };
  for (const [id, r] of latest) {
    const at = d.time(r.checkedAt);
    put('state', id, r.next.state);
    put('consecutive_dead', id, r.next.consecutiveDead);
    put('last_verdict', id, r.verdict);
    put('last_reason', id, r.reason);
    put('last_checked_at', id, at);
    put('updated_at', id, at);
    if (r.verdict === 'live') put('last_live_at', id, at);
    if (r.next.invalidSince !== undefined) put('invalid_since', id, r.next.invalidSince && d.time(r.next.invalidSince));
    if (r.verdict === 'live' || r.verdict === 'exhausted' || r.balance !== null) {
      put('balance', id, r.balance);
      put('currency', id, r.currency);
    }
  }
  const p = new Params(d);
  const set = [...columns].map(([column, values]) => {
    const first = values[0]![1];
    return values.length === latest.size && values.every(([, v]) => sameValue(v, first))
      ? `${column} = ${p.add(first)}`
      : `${column} = CASE id ${values.map(([id, v]) => `WHEN ${idLiteral(id)} THEN ${p.add(v)}`).join(' ')} ELSE ${column} END`;
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
