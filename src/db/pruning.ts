import { inTransaction, type Db, type Executor } from './connect.js';
import { checksOfRun } from './history.js';
import { eventsFor, recordTokenEvents } from './events.js';
import type { EventActor, TokenRow, TokenState, Verdict } from './schema.js';

export interface CandidateQuery {
  runId: number;
  providerId: number;
  pool?: string;
  /** TSCHK_PRUNE_AFTER. */
  after: number;
  /** Which states may be pruned: flag takes active/suspect, delete also the already flagged. */
  states: readonly TokenState[];
  /** `dead`, and `exhausted` with TSCHK_PRUNE_EXHAUSTED. */
  verdicts: readonly Verdict[];
}

/**
 * Tokens confirmed dead by this run: a dead verdict in this run's history and enough in a row.
 * Canaries are never pruned: they test the provider, they are not in rotation.
 */
async function candidates(db: Db, q: CandidateQuery) {
  const checked = (await checksOfRun(db, q.runId, q.verdicts)).select('token_id');
  let query = db.kysely
    .selectFrom('tokens')
    .where('provider_id', '=', q.providerId)
    .where('expect', 'is', null)
    .where('consecutive_dead', '>=', q.after)
    .where('state', 'in', [...q.states])
    .where('id', 'in', checked);
  if (q.pool !== undefined) query = query.where('pool', '=', q.pool);
  return query;
}

export async function pruneCandidates(db: Db, q: CandidateQuery & { afterId: number; limit: number }): Promise<TokenRow[]> {
  return (await candidates(db, q)).selectAll().where('id', '>', q.afterId).orderBy('id').limit(q.limit).execute();
}

export async function countPruneCandidates(db: Db, q: CandidateQuery): Promise<number> {
  const r = await (await candidates(db, q)).select((eb) => eb.fn.countAll().as('n')).executeTakeFirst();
  return Number(r?.n ?? 0);
}

/**
 * The provider's tokens in rotation that this run did not check (another pool, not due yet), by
 * their last answer: `judged` had a definite one, `dead` one of `verdicts`.
 */
export async function lastAnswersOutsideRun(
  db: Db,
  q: Pick<CandidateQuery, 'runId' | 'providerId' | 'verdicts'>,
): Promise<{ judged: number; dead: number }> {
  const checked = (await checksOfRun(db, q.runId)).select('token_id');
  const rows = await db.kysely
    .selectFrom('tokens')
    .select(['last_verdict', (eb) => eb.fn.countAll().as('n')])
    .where('provider_id', '=', q.providerId)
    .where('expect', 'is', null)
    .where('state', 'in', ['active', 'suspect'])
    .where('last_verdict', 'in', ['live', 'dead', 'exhausted'])
    // A token id is one provider's: the run's checks of other providers never match.
    .where('id', 'not in', checked)
    .groupBy('last_verdict')
    .execute();
  let judged = 0;
  let dead = 0;
  for (const r of rows) {
    judged += Number(r.n);
    if (q.verdicts.includes(r.last_verdict as Verdict)) dead += Number(r.n);
  }
  return { judged, dead };
}

/**
 * Takes tokens out of rotation without deleting them, with an `invalid` event for each token
 * this changes (one already invalid or disabled is no news).
 */
export async function flagTokens(
  db: Executor,
  ids: readonly number[],
  now = new Date(),
  cause: { runId?: number | null; reason?: string; actor?: EventActor | null } = {},
): Promise<void> {
  if (ids.length === 0) return;
  await inTransaction(db, async (tx) => {
    const changed = await tx.kysely
      .selectFrom('tokens')
      .select(['id', 'fingerprint', 'provider_id', 'pool'])
      .where('id', 'in', [...ids])
      .where('state', 'not in', ['disabled', 'invalid'])
      .execute();
    await tx.kysely
      .updateTable('tokens')
      .set({ state: 'invalid', invalid_since: db.dialect.time(now), updated_at: db.dialect.time(now) })
      .where('id', 'in', [...ids])
      .where('state', '!=', 'disabled')
      .execute();
    await recordTokenEvents(tx, eventsFor(changed, { event: 'invalid', reason: cause.reason ?? 'confirmed_dead', at: now, ...cause }));
  });
}
