import { setImmediate as turn } from 'node:timers/promises';
import { inTransaction, type Db } from '../db/connect.js';
import {
  archiveSourceTokens,
  countSourceTokens,
  insertSourceTokens,
  otherSourcesTokens,
  placedTokens,
  placeTokens,
  poolFingerprintPage,
  setPositions,
  type PoolSource,
} from '../db/reconcile.js';
import { fingerprint } from '../secret.js';

export type { PoolSource } from '../db/reconcile.js';

export interface SourceEntry {
  secret: string;
  /** `LLM-Deep/token.json:3`, a One-API channel id, … */
  sourceRef: string;
}

export interface ReconcileResult {
  added: number;
  removed: number;
  /** The listing turned out incomplete (see `ReconcileOptions.complete`): nothing was removed. */
  incomplete?: boolean;
}

export interface ReconcileOptions {
  now?: Date;
  /**
   * Asked once every entry is in: false means the listing may have missed some (the file changed
   * while it was read), so no token is removed on its word; the next sync settles it.
   */
  complete?: () => boolean;
  /** Stops between batches (shutdown); nothing is removed then either. */
  signal?: AbortSignal;
}

export const reconcileLimits = {
  /**
   * Entries per transaction: other work on the database (a SQLite file has one connection) gets its
   * turn between them. Much smaller ones would cost time: every commit writes out again the index
   * pages that random fingerprints touch. (Tests make it small, to span batches with few rows.)
   */
  batch: 5_000,
  /** Rows per read of the pool when looking for the tokens a listing lacks. */
  page: 2_000,
};

/**
 * Makes the tokens that `source` owns in one pool exactly `entries`, in their order: new ones are
 * added, positions and source refs follow the source, tokens gone from it are archived (their
 * history stays). A token already in the pool from elsewhere (an import) is taken over. Tokens of
 * other sources keep their relative order after the source's.
 */
export function reconcilePool(db: Db, target: PoolSource, entries: readonly SourceEntry[], now = new Date()): Promise<ReconcileResult> {
  return reconcilePoolInBatches(db, target, [entries], { now });
}

/**
 * `reconcilePool` for a listing that arrives in pieces (the lines of a large file), in memory
 * that does not grow with it beyond one fingerprint per token: each batch of entries is added
 * or moved in its own transaction; only once all are in (and `complete` agrees) are the tokens
 * the listing lacks archived, and the other sources' tokens moved after it.
 */
export async function reconcilePoolInBatches(
  db: Db,
  target: PoolSource,
  listing: AsyncIterable<readonly SourceEntry[]> | Iterable<readonly SourceEntry[]>,
  opts: ReconcileOptions = {},
): Promise<ReconcileResult> {
  const now = opts.now ?? new Date();
  const wanted = new Set<string>();
  let added = 0;

  const applyBatch = async (entries: readonly SourceEntry[]) => {
    const batch: Array<{ fp: string; entry: SourceEntry; position: number }> = [];
    for (const entry of entries) {
      const fp = fingerprint(entry.secret);
      if (wanted.has(fp)) continue;
      wanted.add(fp);
      batch.push({ fp, entry, position: wanted.size });
    }
    if (batch.length === 0) return;
    await inTransaction(db, async (tx) => {
      const rows = await placedTokens(
        tx,
        target,
        batch.map((b) => b.fp),
      );
      const byFingerprint = new Map(rows.map((r) => [r.fingerprint, r]));
      const inserts = [];
      const places = [];
      for (const { fp, entry, position } of batch) {
        const row = byFingerprint.get(fp);
        if (!row) {
          inserts.push({ secret: entry.secret, fingerprint: fp, sourceRef: entry.sourceRef, position });
        } else if (row.position !== position || row.source !== target.source || row.source_ref !== entry.sourceRef) {
          places.push({ id: row.id, position, sourceRef: entry.sourceRef });
        }
      }
      await placeTokens(tx, target, places, now);
      await insertSourceTokens(tx, target, inserts, now);
      added += inserts.length;
    });
    await turn();
  };

  let pending: SourceEntry[] = [];
  for await (const entries of listing) {
    for (const e of entries) {
      pending.push(e);
      if (pending.length < reconcileLimits.batch) continue;
      if (opts.signal?.aborted) return { added, removed: 0, incomplete: true };
      await applyBatch(pending);
      pending = [];
    }
  }
  if (pending.length > 0 && !opts.signal?.aborted) await applyBatch(pending);
  if (opts.signal?.aborted || opts.complete?.() === false) return { added, removed: 0, incomplete: true };

  const removed = await removeUnlisted(db, target, wanted, now);
  await moveOthersAfter(db, target, wanted.size);
  return { added, removed };
}

/** Archives the source's tokens that the listing lacks, a batch per transaction. */
async function removeUnlisted(db: Db, target: PoolSource, wanted: ReadonlySet<string>, now: Date): Promise<number> {
  // Every listed token has its row now: when the source has no more rows than that, none is unlisted.
  if ((await countSourceTokens(db, target)) <= wanted.size) return 0;
  const gone: number[] = [];
  const { batch, page: pageSize } = reconcileLimits;
  for (let after = ''; ;) {
    const page = await poolFingerprintPage(db, target, after, pageSize);
    for (const r of page) if (r.source === target.source && !wanted.has(r.fingerprint)) gone.push(Number(r.id));
    if (page.length < pageSize) break;
    after = page[page.length - 1]!.fingerprint;
  }
  let removed = 0;
  for (let i = 0; i < gone.length; i += batch) {
    const ids = gone.slice(i, i + batch);
    removed += await archiveSourceTokens(db, target, ids, now);
    await turn();
  }
  return removed;
}

/** The pool's tokens of other sources (imports), in their order, after the source's `count`. */
async function moveOthersAfter(db: Db, target: PoolSource, count: number): Promise<void> {
  const others = await otherSourcesTokens(db, target);
  const moves = others.map((r, i) => ({ id: r.id, from: r.position, to: count + i + 1 })).filter((m) => m.from !== m.to);
  const { batch } = reconcileLimits;
  for (let i = 0; i < moves.length; i += batch) {
    await setPositions(db, moves.slice(i, i + batch));
    await turn();
  }
}
