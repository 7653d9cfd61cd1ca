import { sql } from 'kysely';
import type { Db, Executor } from './connect.js';
import { num } from './dialect.js';
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

/** The newest archive row of a token. */
export async function latestArchiveOfToken(db: Executor, tokenId: number): Promise<ArchiveRow | undefined> {
  return db.kysely
    .selectFrom('token_archive')
    .selectAll()
    .where('token_id', '=', tokenId)
    .orderBy('id', 'desc')
    .limit(1)
    .executeTakeFirst();
}

/** The archived secret of each of these token ids that has one. */
export async function archivedSecrets(db: Executor, tokenIds: readonly number[]): Promise<Map<number, string>> {
  const out = new Map<number, string>();
  for (let i = 0; i < tokenIds.length; i += 200) {
    const rows = await db.kysely
      .selectFrom('token_archive')
      .select(['token_id', 'secret'])
      .where('token_id', 'in', tokenIds.slice(i, i + 200))
      .execute();
    for (const r of rows) if (r.token_id !== null) out.set(num(r.token_id), r.secret);
  }
  return out;
}

export interface ArchiveSearch {
  /** In the label, the fingerprint or the provider's name, case-insensitive. */
  text?: string;
  restored: boolean;
  offset: number;
  limit: number;
}

/** Archive rows, newest first, one page of them, and how many match in all. */
export async function searchArchive(db: Executor, q: ArchiveSearch): Promise<{ total: number; rows: ArchiveRow[] }> {
  let base = db.kysely.selectFrom('token_archive');
  if (!q.restored) base = base.where('restored_at', 'is', null);
  if (q.text) {
    const pattern = `%${q.text.toLowerCase().replace(/[!%_]/g, (c) => `!${c}`)}%`;
    base = base.where((eb) =>
      eb.or([
        sql<boolean>`lower(label) like ${pattern} escape '!'`,
        sql<boolean>`fingerprint like ${pattern} escape '!'`,
        sql<boolean>`lower(provider_name) like ${pattern} escape '!'`,
      ]),
    );
  }
  const total = num((await base.select((eb) => eb.fn.countAll().as('n')).executeTakeFirst())?.n);
  const rows = await base.selectAll().orderBy('id', 'desc').offset(q.offset).limit(q.limit).execute();
  return { total, rows };
}

export async function findArchiveEntry(db: Executor, id: number) {
  return db.kysely
    .selectFrom('token_archive')
    .select(['id', 'fingerprint', 'provider_name', 'pool', 'restored_at'])
    .where('id', '=', id)
    .executeTakeFirst();
}
