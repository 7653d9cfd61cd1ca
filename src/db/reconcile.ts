import { inTransaction, type Executor } from './connect.js';
import { archiveAndDeleteTokens } from './tokens.js';
import type { TokenRow, TokenSource } from './schema.js';

/*
 * The statements of bringing one pool in line with its source (sources/reconcile.ts decides what
 * to add, move and archive; these run it).
 */

/** One pool and the source whose tokens in it are being reconciled. */
export interface PoolSource {
  providerId: number;
  providerName: string;
  pool: string;
  source: Extract<TokenSource, 'file' | 'oneapi'>;
}

export type PlacedToken = Pick<TokenRow, 'id' | 'fingerprint' | 'position' | 'source' | 'source_ref'>;

/** 13 columns a row: well below every dialect's limit of bound values in one statement. */
const INSERT_CHUNK = 500;

/** The pool's rows of these fingerprints, whatever their source. */
export async function placedTokens(db: Executor, target: PoolSource, fingerprints: readonly string[]): Promise<PlacedToken[]> {
  return db.kysely
    .selectFrom('tokens')
    .select(['id', 'fingerprint', 'position', 'source', 'source_ref'])
    .where('provider_id', '=', target.providerId)
    .where('pool', '=', target.pool)
    .where('fingerprint', 'in', [...fingerprints])
    .execute();
}

/** The token is at `position` and belongs to the target's source, from `sourceRef`. */
export async function placeToken(
  db: Executor,
  target: PoolSource,
  id: number,
  at: { position: number; sourceRef: string },
  now: Date,
): Promise<void> {
  await db.kysely
    .updateTable('tokens')
    .set({ position: at.position, source: target.source, source_ref: at.sourceRef, updated_at: db.dialect.time(now) })
    .where('id', '=', id)
    .execute();
}

/** New tokens of the source, active and never checked. */
export async function insertSourceTokens(
  db: Executor,
  target: PoolSource,
  entries: ReadonlyArray<{ secret: string; fingerprint: string; sourceRef: string; position: number }>,
  now: Date,
): Promise<void> {
  const t = db.dialect.time(now);
  const rows = entries.map((e) => ({
    provider_id: target.providerId,
    pool: target.pool,
    position: e.position,
    secret: e.secret,
    fingerprint: e.fingerprint,
    label: null,
    source: target.source,
    source_ref: e.sourceRef,
    expect: null,
    state: 'active' as const,
    consecutive_dead: 0,
    created_at: t,
    updated_at: t,
  }));
  for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
    await db.kysely
      .insertInto('tokens')
      .values(rows.slice(i, i + INSERT_CHUNK))
      .execute();
  }
}

/** How many tokens of the pool the source brought. */
export async function countSourceTokens(db: Executor, target: PoolSource): Promise<number> {
  const owned = await db.kysely
    .selectFrom('tokens')
    .select((eb) => eb.fn.countAll().as('n'))
    .where('provider_id', '=', target.providerId)
    .where('pool', '=', target.pool)
    .where('source', '=', target.source)
    .executeTakeFirst();
  return Number(owned?.n ?? 0);
}

/** A page of the pool in fingerprint order, along the unique (provider, pool, fingerprint) index: no sort. */
export async function poolFingerprintPage(
  db: Executor,
  target: PoolSource,
  after: string,
  limit: number,
): Promise<Array<Pick<TokenRow, 'id' | 'fingerprint' | 'source'>>> {
  return db.kysely
    .selectFrom('tokens')
    .select(['id', 'fingerprint', 'source'])
    .where('provider_id', '=', target.providerId)
    .where('pool', '=', target.pool)
    .where('fingerprint', '>', after)
    .orderBy('fingerprint')
    .limit(limit)
    .execute();
}

/** Archives (reason `source_removed`) and deletes those of the tokens that are still the source's, in one transaction. */
export async function archiveSourceTokens(db: Executor, target: PoolSource, ids: readonly number[], now: Date): Promise<number> {
  return inTransaction(db, async (tx) => {
    const rows = await tx.kysely
      .selectFrom('tokens')
      .selectAll()
      .where('id', 'in', [...ids])
      .where('source', '=', target.source)
      .execute();
    await archiveAndDeleteTokens(tx, rows, target.providerName, 'source_removed', now);
    return rows.length;
  });
}

/** The pool's tokens of other sources (imports), in their order. */
export async function otherSourcesTokens(db: Executor, target: PoolSource): Promise<Array<Pick<TokenRow, 'id' | 'position'>>> {
  return db.kysely
    .selectFrom('tokens')
    .select(['id', 'position'])
    .where('provider_id', '=', target.providerId)
    .where('pool', '=', target.pool)
    .where('source', '!=', target.source)
    .orderBy('position')
    .orderBy('id')
    .execute();
}

/** Moves tokens to new positions, in one transaction. */
export async function setPositions(db: Executor, moves: ReadonlyArray<{ id: number; to: number }>): Promise<void> {
  await inTransaction(db, async (tx) => {
    for (const m of moves) await tx.kysely.updateTable('tokens').set({ position: m.to }).where('id', '=', m.id).execute();
  });
}
