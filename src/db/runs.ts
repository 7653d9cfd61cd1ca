import type { Db } from './connect.js';
import type { CheckRunRow, RunStatus, RunTrigger } from './schema.js';

export interface RunCounts {
  checked: number;
  live: number;
  dead: number;
  exhausted: number;
  unknown: number;
  pruned: number;
  held: number;
}

export const zeroCounts = (): RunCounts => ({ checked: 0, live: 0, dead: 0, exhausted: 0, unknown: 0, pruned: 0, held: 0 });

/** Just the counts of a summary that holds more. */
export const countsOf = (s: RunCounts): RunCounts => ({
  checked: s.checked,
  live: s.live,
  dead: s.dead,
  exhausted: s.exhausted,
  unknown: s.unknown,
  pruned: s.pruned,
  held: s.held,
});

export async function openRun(db: Db, trigger: RunTrigger, scope: string, now = new Date()): Promise<number> {
  return db.dialect.insertId(db.kysely, 'check_runs', {
    trigger,
    scope,
    status: 'running',
    started_at: db.dialect.time(now),
    checked: 0,
    live: 0,
    dead: 0,
    exhausted: 0,
    unknown: 0,
    pruned: 0,
    held: 0,
  });
}

export async function closeRun(
  db: Db,
  id: number,
  status: Exclude<RunStatus, 'running'>,
  counts: RunCounts,
  error: string | null = null,
  now = new Date(),
): Promise<void> {
  await db.kysely
    .updateTable('check_runs')
    .set({ status, finished_at: db.dialect.time(now), error, ...counts })
    .where('id', '=', id)
    .execute();
}

/** A `running` row at start-up was left by a crash: close it, the process that ran it is gone. */
export async function abortStaleRuns(db: Db, now = new Date()): Promise<number> {
  const r = await db.kysely
    .updateTable('check_runs')
    .set({ status: 'aborted', finished_at: db.dialect.time(now), error: 'process stopped while running' })
    .where('status', '=', 'running')
    .executeTakeFirst();
  return Number(r.numUpdatedRows);
}

export async function listRuns(db: Db, limit: number, beforeId?: number): Promise<CheckRunRow[]> {
  let q = db.kysely.selectFrom('check_runs').selectAll();
  if (beforeId !== undefined) q = q.where('id', '<', beforeId);
  return q.orderBy('id', 'desc').limit(limit).execute();
}

export async function findRun(db: Db, id: number): Promise<CheckRunRow | undefined> {
  return db.kysely.selectFrom('check_runs').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function lastFinishedRun(db: Db): Promise<CheckRunRow | undefined> {
  return db.kysely
    .selectFrom('check_runs')
    .selectAll()
    .where('status', '!=', 'running')
    .orderBy('id', 'desc')
    .limit(1)
    .executeTakeFirst();
}
