import type { Executor } from './connect.js';

/** The console's sessions, by id (an HMAC of the cookie's value: see console/session.ts). */

/** Sessions that ran out are of no use to anyone. */
export async function deleteExpiredSessions(db: Executor, now: Date): Promise<void> {
  await db.kysely.deleteFrom('console_sessions').where('expires_at', '<=', db.dialect.time(now)).execute();
}

export async function insertSession(db: Executor, s: { id: string; client: string; createdAt: Date; expiresAt: Date }): Promise<void> {
  await db.kysely
    .insertInto('console_sessions')
    .values({ id: s.id, client: s.client.slice(0, 64), created_at: db.dialect.time(s.createdAt), expires_at: db.dialect.time(s.expiresAt) })
    .execute();
}

/** When the session ends, if it has not yet. */
export async function sessionExpiry(db: Executor, id: string, now: Date): Promise<Date | undefined> {
  const row = await db.kysely
    .selectFrom('console_sessions')
    .select('expires_at')
    .where('id', '=', id)
    .where('expires_at', '>', db.dialect.time(now))
    .executeTakeFirst();
  return (row && db.dialect.readTime(row.expires_at)) ?? undefined;
}

export async function deleteSession(db: Executor, id: string): Promise<void> {
  await db.kysely.deleteFrom('console_sessions').where('id', '=', id).execute();
}
