import type { Db } from '../db/connect.js';
import type { TokenSource } from '../db/schema.js';
import { archiveAndDeleteTokens } from '../db/tokens.js';
import { fingerprint } from '../secret.js';

export interface SourceEntry {
  secret: string;
  /** `LLM-Deep/token.json:3`, a One-API channel id, … */
  sourceRef: string;
}

export interface PoolSource {
  providerId: number;
  providerName: string;
  pool: string;
  source: Extract<TokenSource, 'file' | 'oneapi'>;
}

export interface ReconcileResult {
  added: number;
  removed: number;
}

const CHUNK = 200;

/**
 * Makes the tokens that `source` owns in one pool exactly `entries`, in their order: new ones are
 * added, positions and source refs follow the source, tokens gone from it are archived (their
 * history stays). A token already in the pool from elsewhere (an import) is taken over. Tokens of
 * other sources keep their relative order after the source's.
 */
export async function reconcilePool(db: Db, target: PoolSource, entries: readonly SourceEntry[], now = new Date()): Promise<ReconcileResult> {
  const t = db.dialect.time(now);
  return db.kysely.transaction().execute(async (trx) => {
    const rows = await trx
      .selectFrom('tokens')
      .selectAll()
      .where('provider_id', '=', target.providerId)
      .where('pool', '=', target.pool)
      .orderBy('position')
      .orderBy('id')
      .execute();
    const byFingerprint = new Map(rows.map((r) => [r.fingerprint, r]));
    const wanted = new Map<string, SourceEntry>();
    for (const e of entries) {
      const fp = fingerprint(e.secret);
      if (!wanted.has(fp)) wanted.set(fp, e);
    }

    let position = 0;
    const inserts = [];
    for (const [fp, e] of wanted) {
      position++;
      const row = byFingerprint.get(fp);
      if (!row) {
        inserts.push({
          provider_id: target.providerId,
          pool: target.pool,
          position,
          secret: e.secret,
          fingerprint: fp,
          label: null,
          source: target.source,
          source_ref: e.sourceRef,
          expect: null,
          state: 'active' as const,
          consecutive_dead: 0,
          created_at: t,
          updated_at: t,
        });
      } else if (row.position !== position || row.source !== target.source || row.source_ref !== e.sourceRef) {
        await trx
          .updateTable('tokens')
          .set({ position, source: target.source, source_ref: e.sourceRef, updated_at: t })
          .where('id', '=', row.id)
          .execute();
      }
    }
    for (let i = 0; i < inserts.length; i += CHUNK) {
      await trx.insertInto('tokens').values(inserts.slice(i, i + CHUNK)).execute();
    }

    const gone = rows.filter((r) => r.source === target.source && !wanted.has(r.fingerprint));
    await archiveAndDeleteTokens(trx, db, gone, target.providerName, 'source_removed', now);

    for (const row of rows) {
      if (row.source === target.source || wanted.has(row.fingerprint)) continue;
      position++;
      if (row.position !== position) {
        await trx.updateTable('tokens').set({ position }).where('id', '=', row.id).execute();
      }
    }
    return { added: inserts.length, removed: gone.length };
  });
}
