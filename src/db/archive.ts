import type { Db } from './connect.js';
import type { ArchiveRow } from './schema.js';

export interface ArchiveFilter {
  providerName?: string;
  pool?: string;
  fingerprint?: string;
  /** Only rows not restored yet. */
  unrestored?: boolean;
}

/** Archived tokens, oldest first. */
export async function listArchive(db: Db, f: ArchiveFilter): Promise<ArchiveRow[]> {
  let q = db.kysely.selectFrom('token_archive').selectAll();
  if (f.providerName !== undefined) q = q.where('provider_name', '=', f.providerName);
  if (f.pool !== undefined) q = q.where('pool', '=', f.pool);
  if (f.fingerprint !== undefined) q = q.where('fingerprint', '=', f.fingerprint);
  if (f.unrestored) q = q.where('restored_at', 'is', null);
  return q.orderBy('id').execute();
}

export async function markRestored(db: Db, ids: readonly number[], now = new Date()): Promise<void> {
  if (ids.length === 0) return;
  await db.kysely
    .updateTable('token_archive')
    .set({ restored_at: db.dialect.time(now) })
    .where('id', 'in', [...ids])
    .execute();
}
