import type { Db } from './connect.js';
import { eventsFor, recordTokenEvents } from './events.js';
import type { ArchiveRow, EventActor } from './schema.js';

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

/** Marks archive rows restored, with a `restored` event for each, in one transaction. */
export async function markRestored(db: Db, ids: readonly number[], now = new Date(), actor: EventActor | null = null): Promise<void> {
  if (ids.length === 0) return;
  await db.kysely.transaction().execute(async (trx) => {
    const rows = await trx
      .selectFrom('token_archive')
      .select(['token_id', 'fingerprint', 'provider_id', 'pool', 'reason'])
      .where('id', 'in', [...ids])
      .execute();
    await trx
      .updateTable('token_archive')
      .set({ restored_at: db.dialect.time(now) })
      .where('id', 'in', [...ids])
      .execute();
    const events = rows.flatMap((r) =>
      eventsFor([{ ...r, id: r.token_id }], { event: 'restored', reason: `archived as ${r.reason}`, at: now, actor }),
    );
    await recordTokenEvents(db, events, trx);
  });
}
