import type { Db } from './connect.js';

/** One-API channels tschk disabled itself, by database: the only ones it may enable again. */
export async function disabledChannels(db: Db, oneApiDatabase: string): Promise<Set<number>> {
  const rows = await db.kysely
    .selectFrom('oneapi_disabled_channels')
    .select('channel_id')
    .where('oneapi_database', '=', oneApiDatabase)
    .execute();
  return new Set(rows.map((r) => Number(r.channel_id)));
}

export async function rememberDisabledChannel(
  db: Db,
  c: { oneApiDatabase: string; channelId: number; providerName: string; reason: string },
  now = new Date(),
): Promise<void> {
  await forgetDisabledChannel(db, c.oneApiDatabase, c.channelId);
  await db.kysely
    .insertInto('oneapi_disabled_channels')
    .values({
      oneapi_database: c.oneApiDatabase,
      channel_id: c.channelId,
      provider_name: c.providerName,
      reason: c.reason,
      disabled_at: db.dialect.time(now),
    })
    .execute();
}

export async function forgetDisabledChannel(db: Db, oneApiDatabase: string, channelId: number): Promise<void> {
  await db.kysely
    .deleteFrom('oneapi_disabled_channels')
    .where('oneapi_database', '=', oneApiDatabase)
    .where('channel_id', '=', channelId)
    .execute();
}
