import { sql, type RawBuilder } from 'kysely';
import { inTransaction, type Executor } from './connect.js';
import { idLiteral } from './dialect.js';
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

/** Each token is at its `position` and belongs to the target's source, from its `sourceRef`: a few statements for the lot. */
export async function placeTokens(
  db: Executor,
  target: PoolSource,
  places: ReadonlyArray<{ id: number; position: number; sourceRef: string }>,
  now: Date,
): Promise<void> {
  for (let i = 0; i < places.length; i += UPDATE_CHUNK) {
    const chunk = places.slice(i, i + UPDATE_CHUNK);
    const position = byId(
      'position',
      chunk.map((p) => [p.id, sql.raw<number>(idLiteral(p.position))]),
    );
    const sourceRef = byId(
      'source_ref',
      chunk.map((p) => [p.id, sql.val(p.sourceRef)]),
    );
    const ids = chunk.map((p) => p.id);
    await db.kysely
      .updateTable('tokens')
      .set({ position, source: target.source, source_ref: sourceRef, updated_at: db.dialect.time(now) })
      .where('id', 'in', ids)
      .execute();
  }
}

/**
 * Rows per UPDATE of many. One statement a row was most of a large file's sync on the server
 * dialects (a round trip each); a CASE of 500 arms is still cheap to evaluate per row.
 */
const UPDATE_CHUNK = 500;

/** `CASE id WHEN … THEN … ELSE column END`: the ELSE gives PostgreSQL the type of the parameters. */
function byId<T>(column: 'position' | 'source_ref', values: ReadonlyArray<[number, RawBuilder<T>]>): RawBuilder<T> {
  const arms = values.map(([id, v]) => sql`when ${sql.raw(idLiteral(id))} then ${v}`);
  return sql<T>`case id ${sql.join(arms, sql` `)} else ${sql.ref(column)} end`;
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
    for (let i = 0; i < moves.length; i += UPDATE_CHUNK) {
      const chunk = moves.slice(i, i + UPDATE_CHUNK);
      const position = byId(
        'position',
        chunk.map((m) => [m.id, sql.raw<number>(idLiteral(m.to))]),
      );
      const ids = chunk.map((m) => m.id);
      await tx.kysely.updateTable('tokens').set({ position }).where('id', 'in', ids).execute();
    }
  });
}
