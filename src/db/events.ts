import type { Kysely, Transaction } from 'kysely';
import type { Executor } from './connect.js';
import type { Database, EventActor, TokenEventKind, TokenEventRow } from './schema.js';

/**
 * One state change of a token, as `token_events` keeps it: long after the raw checks are gone,
 * it tells why a token went away (or came back).
 */
export interface TokenEvent {
  at: Date;
  event: TokenEventKind;
  tokenId: number | null;
  fingerprint: string | null;
  providerId: number | null;
  pool: string | null;
  runId: number | null;
  reason: string | null;
  actor: EventActor | null;
}

/** What an event needs to know of a token (a `tokens` or `token_archive` row will do). */
export interface EventToken {
  id: number | null;
  fingerprint: string;
  provider_id: number | null;
  pool: string;
}

/** Where a change came from: the run that made it, or who asked for it. */
export interface EventCause {
  event: TokenEventKind;
  reason: string | null;
  runId?: number | null;
  actor?: EventActor | null;
  at?: Date;
}

const REASON_MAX = 255;
const CHUNK = 200;

export function eventsFor(tokens: readonly EventToken[], e: EventCause): TokenEvent[] {
  const at = e.at ?? new Date();
  return tokens.map((t) => ({
    at,
    event: e.event,
    tokenId: t.id === null ? null : Number(t.id),
    fingerprint: t.fingerprint,
    providerId: t.provider_id === null ? null : Number(t.provider_id),
    pool: t.pool,
    runId: e.runId ?? null,
    reason: e.reason,
    actor: e.actor ?? (e.runId ? 'run' : null),
  }));
}

/** Appends events; inside the caller's transaction when given one. */
export async function recordTokenEvents(
  db: Executor,
  events: readonly TokenEvent[],
  trx?: Kysely<Database> | Transaction<Database>,
): Promise<void> {
  for (let i = 0; i < events.length; i += CHUNK) {
    await (trx ?? db.kysely)
      .insertInto('token_events')
      .values(
        events.slice(i, i + CHUNK).map((e) => ({
          at: db.dialect.time(e.at),
          event: e.event,
          token_id: e.tokenId,
          fingerprint: e.fingerprint,
          provider_id: e.providerId,
          pool: e.pool,
          run_id: e.runId,
          reason: e.reason === null ? null : e.reason.slice(0, REASON_MAX),
          actor: e.actor,
        })),
      )
      .execute();
  }
}

/**
 * `held` events for tokens whose pruning a safety rule holds, except those whose latest event is
 * already `held`: an outage that lasts a day holds the same tokens at every run, and one event
 * says it. Returns how many were written.
 */
export async function recordHeld(
  db: Executor,
  tokens: readonly EventToken[],
  e: { reason: string; runId: number; at?: Date },
): Promise<number> {
  const fresh: EventToken[] = [];
  for (let i = 0; i < tokens.length; i += CHUNK) {
    const chunk = tokens.slice(i, i + CHUNK);
    const ids = chunk.flatMap((t) => (t.id === null ? [] : [Number(t.id)]));
    if (ids.length === 0) continue;
    const latest = db.kysely
      .selectFrom('token_events')
      .select(['token_id', (eb) => eb.fn.max('id').as('last')])
      .where('token_id', 'in', ids)
      .groupBy('token_id')
      .as('latest');
    const rows = await db.kysely
      .selectFrom('token_events as e')
      .innerJoin(latest, 'latest.last', 'e.id')
      .select(['e.token_id', 'e.event'])
      .execute();
    const held = new Set(rows.filter((r) => r.event === 'held').map((r) => Number(r.token_id)));
    fresh.push(...chunk.filter((t) => t.id !== null && !held.has(Number(t.id))));
  }
  await recordTokenEvents(db, eventsFor(fresh, { event: 'held', actor: 'run', ...e }));
  return fresh.length;
}

export interface EventQuery {
  tokenId?: number;
  /** Or every token with this fingerprint (a token removed and restored gets a new id). */
  fingerprint?: string;
  providerId?: number;
  /** Newest first; default 100. */
  limit?: number;
}

/** Events, newest first. */
export async function listTokenEvents(db: Executor, q: EventQuery): Promise<TokenEventRow[]> {
  let query = db.kysely.selectFrom('token_events').selectAll();
  if (q.tokenId !== undefined) query = query.where('token_id', '=', q.tokenId);
  if (q.fingerprint !== undefined) query = query.where('fingerprint', '=', q.fingerprint);
  if (q.providerId !== undefined) query = query.where('provider_id', '=', q.providerId);
  return query
    .orderBy('id', 'desc')
    .limit(q.limit ?? 100)
    .execute();
}

/** The events a run wrote of the given kinds, in order, with the secret of each token still present. */
export async function runEvents(db: Executor, runId: number, kinds: readonly TokenEventKind[]) {
  return db.kysely
    .selectFrom('token_events as e')
    .leftJoin('tokens as t', 't.id', 'e.token_id')
    .select(['e.event', 'e.token_id', 'e.fingerprint', 'e.pool', 't.secret'])
    .where('e.run_id', '=', runId)
    .where('e.event', 'in', [...kinds])
    .orderBy('e.id')
    .execute();
}
