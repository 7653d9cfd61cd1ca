import type { Db } from './connect.js';
import type { ProviderRow } from './schema.js';

export interface Provider {
  id: number;
  name: string;
  kind: string;
  checkUrl: string | null;
  enabled: boolean;
  concurrency: number | null;
}

export function toProvider(row: ProviderRow): Provider {
  return {
    id: Number(row.id),
    name: row.name,
    kind: row.kind,
    checkUrl: row.check_url,
    enabled: Number(row.enabled) === 1,
    concurrency: row.concurrency === null ? null : Number(row.concurrency),
  };
}

export async function listProviders(db: Db): Promise<Provider[]> {
  const rows = await db.kysely.selectFrom('providers').selectAll().orderBy('name').execute();
  return rows.map(toProvider);
}

export async function findProvider(db: Db, name: string): Promise<Provider | undefined> {
  const row = await db.kysely.selectFrom('providers').selectAll().where('name', '=', name).executeTakeFirst();
  return row && toProvider(row);
}

export async function findProviderById(db: Db, id: number): Promise<Provider | undefined> {
  const row = await db.kysely.selectFrom('providers').selectAll().where('id', '=', id).executeTakeFirst();
  return row && toProvider(row);
}

/** Creates the provider, or updates kind/URL of an existing one (env-declared providers are re-applied at every start). */
export async function upsertProvider(
  db: Db,
  p: { name: string; kind: string; checkUrl: string | null; concurrency?: number | null },
  now = new Date(),
): Promise<Provider> {
  const existing = await findProvider(db, p.name);
  if (existing) {
    if (
      existing.kind !== p.kind ||
      existing.checkUrl !== p.checkUrl ||
      (p.concurrency !== undefined && p.concurrency !== existing.concurrency)
    ) {
      await db.kysely
        .updateTable('providers')
        .set({
          kind: p.kind,
          check_url: p.checkUrl,
          ...(p.concurrency !== undefined ? { concurrency: p.concurrency } : {}),
          updated_at: db.dialect.time(now),
        })
        .where('id', '=', existing.id)
        .execute();
    }
    return (await findProvider(db, p.name))!;
  }
  await db.dialect.insertId(db.kysely, 'providers', {
    name: p.name,
    kind: p.kind,
    check_url: p.checkUrl,
    enabled: 1,
    concurrency: p.concurrency ?? null,
    created_at: db.dialect.time(now),
    updated_at: db.dialect.time(now),
  });
  return (await findProvider(db, p.name))!;
}
