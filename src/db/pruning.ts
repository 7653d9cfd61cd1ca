import type { Db, Executor } from './connect.js';
import type { TokenRow, TokenState, Verdict } from './schema.js';

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
function candidates(db: Db, q: CandidateQuery) {
  let query = db.kysely
    .selectFrom('tokens')
    .where('provider_id', '=', q.providerId)
    .where('expect', 'is', null)
    .where('consecutive_dead', '>=', q.after)
    .where('state', 'in', [...q.states])
    .where('id', 'in', (eb) =>
      eb.selectFrom('token_status').select('token_id').where('run_id', '=', q.runId).where('verdict', 'in', [...q.verdicts]),
    );
  if (q.pool !== undefined) query = query.where('pool', '=', q.pool);
  return query;
}

export async function pruneCandidates(db: Db, q: CandidateQuery & { afterId: number; limit: number }): Promise<TokenRow[]> {
  return candidates(db, q).selectAll().where('id', '>', q.afterId).orderBy('id').limit(q.limit).execute();
}

export async function countPruneCandidates(db: Db, q: CandidateQuery): Promise<number> {
  const r = await candidates(db, q)
    .select((eb) => eb.fn.countAll().as('n'))
    .executeTakeFirst();
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
  const rows = await db.kysely
    .selectFrom('tokens')
    .select(['last_verdict', (eb) => eb.fn.countAll().as('n')])
    .where('provider_id', '=', q.providerId)
    .where('expect', 'is', null)
    .where('state', 'in', ['active', 'suspect'])
    .where('last_verdict', 'in', ['live', 'dead', 'exhausted'])
    .where('id', 'not in', (eb) =>
      eb.selectFrom('token_status').select('token_id').where('run_id', '=', q.runId).where('provider_id', '=', q.providerId),
    )
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

/** Takes tokens out of rotation without deleting them. */
export async function flagTokens(db: Executor, ids: readonly number[], now = new Date()): Promise<void> {
  if (ids.length === 0) return;
  await db.kysely
    .updateTable('tokens')
    .set({ state: 'invalid', invalid_since: db.dialect.time(now), updated_at: db.dialect.time(now) })
    .where('id', 'in', [...ids])
    .where('state', '!=', 'disabled')
    .execute();
}
