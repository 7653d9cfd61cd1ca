import type { Kysely, Transaction } from 'kysely';
import type { Db } from './connect.js';
import { num } from './dialect.js';
import { checksOfDay, DAY_MS, dayString, summarizeDay } from './rollups.js';
import type { Database } from './schema.js';

// The steps of the history keeper. Each is one short transaction, safe to repeat after a crash:
// what it rolls up or deletes commits together with the mark that says it was done.

type Executor = Kysely<Database> | Transaction<Database>;

/** All days before this one are rolled up (days since 1970). */
export const ROLLED_UNTIL = 'rolled_until_day';
/** Within that day, the tokens up to this id are. */
export const ROLLUP_TOKEN = 'rollup_token';
const INSERT_ROWS = 100;

export async function readState(db: Executor, name: string): Promise<number | null> {
  const row = await db.selectFrom('history_state').select('value').where('name', '=', name).executeTakeFirst();
  return row?.value === null || row?.value === undefined ? null : num(row.value);
}

export async function writeState(db: Executor, name: string, value: number | null): Promise<void> {
  const r = await db.updateTable('history_state').set({ value }).where('name', '=', name).executeTakeFirst();
  if (Number(r.numUpdatedRows) === 0) await db.insertInto('history_state').values({ name, value }).execute();
}

/** A page of the tokens that have history, in id order. */
export async function historyTokenPage(
  db: Db,
  afterTokenId: number,
  limit: number,
): Promise<Array<{ tokenId: number; providerId: number }>> {
  const rows = await db.kysely
    .selectFrom('history_tokens')
    .select(['token_id', 'provider_id'])
    .where('token_id', '>', afterTokenId)
    .orderBy('token_id')
    .limit(limit)
    .execute();
  return rows.map((r) => ({ tokenId: num(r.token_id), providerId: num(r.provider_id) }));
}

/** The first check at or after `from` (the oldest, without it): one step down the time index. */
export async function firstCheckAt(db: Db, from?: Date): Promise<Date | null> {
  let q = db.kysely.selectFrom('history_checks').select((eb) => eb.fn.min('at').as('at'));
  if (from) q = q.where('at', '>=', db.dialect.historyTime(from));
  const row = await q.executeTakeFirst();
  return db.dialect.readTime(row?.at ?? null);
}

/**
 * Rolls up one UTC day of some tokens into `token_daily` — replacing what an earlier attempt
 * wrote — deletes their raw rows of that day older than `deleteBefore`, and moves the cursor,
 * in one transaction. A crash before the commit leaves everything as it was; after it, the
 * cursor says these tokens are done, so no day is counted twice.
 */
export async function rollUpTokens(
  db: Db,
  day: number,
  tokens: ReadonlyArray<{ tokenId: number; providerId: number }>,
  deleteBefore: Date,
  reasons: ReadonlyMap<number, string>,
): Promise<{ rollups: number; removed: number }> {
  if (tokens.length === 0) return { rollups: 0, removed: 0 };
  const ids = tokens.map((t) => t.tokenId);
  const provider = new Map(tokens.map((t) => [t.tokenId, t.providerId]));
  return db.kysely.transaction().execute(async (trx) => {
    const summaries = summarizeDay(day, await checksOfDay(db, ids, day, reasons, trx));
    await trx.deleteFrom('token_daily').where('token_id', 'in', ids).where('day', '=', dayString(day)).execute();
    for (let i = 0; i < summaries.length; i += INSERT_ROWS) {
      await trx
        .insertInto('token_daily')
        .values(summaries.slice(i, i + INSERT_ROWS).map((s) => ({ ...s, provider_id: provider.get(s.token_id)! })))
        .execute();
    }
    let removed = 0;
    if (deleteBefore.getTime() > day * DAY_MS) {
      removed = await deleteChecks(db, trx, ids, new Date(Math.min((day + 1) * DAY_MS, deleteBefore.getTime())), new Date(day * DAY_MS));
    }
    await writeState(trx, ROLLED_UNTIL, day);
    await writeState(trx, ROLLUP_TOKEN, ids[ids.length - 1]!);
    return { rollups: summaries.length, removed };
  });
}

/** Marks a day rolled up for every token. */
export async function finishRollupDay(db: Db, day: number): Promise<void> {
  await db.kysely.transaction().execute(async (trx) => {
    await writeState(trx, ROLLED_UNTIL, day + 1);
    await writeState(trx, ROLLUP_TOKEN, 0);
  });
}

async function deleteChecks(db: Db, trx: Executor, ids: readonly number[], before: Date, from?: Date): Promise<number> {
  let q = trx
    .deleteFrom('history_checks')
    .where('token_id', 'in', [...ids])
    .where('at', '<', db.dialect.historyTime(before));
  if (from) q = q.where('at', '>=', db.dialect.historyTime(from));
  return Number((await q.executeTakeFirst()).numDeletedRows);
}

/** Deletes the raw checks of some tokens older than `before` (and from `from` on): each token's rows sit together, so this reads only them. */
export async function trimChecks(db: Db, ids: readonly number[], before: Date, from?: Date): Promise<number> {
  if (ids.length === 0) return 0;
  return deleteChecks(db, db.kysely, ids, before, from);
}

/** Deletes the rollups of some tokens of days before `beforeDay`. */
export async function trimRollups(db: Db, ids: readonly number[], beforeDay: number): Promise<number> {
  if (ids.length === 0) return 0;
  const r = await db.kysely
    .deleteFrom('token_daily')
    .where('token_id', 'in', [...ids])
    .where('day', '<', dayString(beforeDay))
    .executeTakeFirst();
  return Number(r.numDeletedRows);
}

/** Deletes up to `limit` events older than `before`; returns how many went. */
export async function trimEvents(db: Db, before: Date, limit: number): Promise<number> {
  const ids = await db.kysely
    .selectFrom('token_events')
    .select('id')
    .where('at', '<', db.dialect.time(before))
    .orderBy('id')
    .limit(limit)
    .execute();
  if (ids.length === 0) return 0;
  const r = await db.kysely
    .deleteFrom('token_events')
    .where(
      'id',
      'in',
      ids.map((e) => num(e.id)),
    )
    .executeTakeFirst();
  return Number(r.numDeletedRows);
}
