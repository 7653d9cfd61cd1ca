import type { Db } from './connect.js';
import { countRunVerdicts } from './history.js';
import type { CheckRunRow, RunStatus, RunTrigger, Verdict } from './schema.js';

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

/** A run's outcome for one provider, as `check_run_providers` keeps it. */
export interface ProviderOutcome extends RunCounts {
  providerId: number;
  provider: string;
  unreachable: boolean;
  unreliable: boolean;
  heldReason: string | null;
  error: string | null;
}

/**
 * Closes a run that is still `running`, with its per-provider outcomes, in one transaction.
 * False when it was closed already: another process found its holder gone and aborted it, and
 * that stands.
 */
export async function closeRun(
  db: Db,
  id: number,
  close: {
    status: Exclude<RunStatus, 'running'>;
    /** The verdict counts are not taken from here: each batch of history moved them on as it was written. */
    counts: Pick<RunCounts, 'pruned' | 'held'>;
    error?: string | null;
    providers?: readonly ProviderOutcome[];
  },
  now = new Date(),
): Promise<boolean> {
  const { status, counts, error = null, providers = [] } = close;
  return db.kysely.transaction().execute(async (trx) => {
    const r = await trx
      .updateTable('check_runs')
      .set({ status, finished_at: db.dialect.time(now), error, pruned: counts.pruned, held: counts.held })
      .where('id', '=', id)
      .where('status', '=', 'running')
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) === 0) return false;
    if (providers.length > 0) {
      await trx
        .insertInto('check_run_providers')
        .values(
          providers.map((p) => ({
            run_id: id,
            provider_id: p.providerId,
            provider_name: p.provider,
            ...countsOf(p),
            unreachable: p.unreachable ? 1 : 0,
            unreliable: p.unreliable ? 1 : 0,
            held_reason: p.heldReason?.slice(0, 512) ?? null,
            error: p.error,
          })),
        )
        .execute();
    }
    return true;
  });
}

/** A batch's verdicts per run: added to the run's counts in the batch's transaction, so that the row always matches its history. */
export function verdictsByRun(records: ReadonlyArray<{ runId: number | null; verdict: Verdict }>): Map<number, Record<Verdict, number>> {
  const byRun = new Map<number, Record<Verdict, number>>();
  for (const r of records) {
    if (r.runId === null) continue;
    let c = byRun.get(r.runId);
    if (!c) byRun.set(r.runId, (c = { live: 0, dead: 0, exhausted: 0, unknown: 0 }));
    c[r.verdict]++;
  }
  return byRun;
}

/**
 * Closes `running` runs as aborted, counted from the history rows that carry their id. Only a
 * process that holds the run lease may call it: every `running` row but its own is an orphan then.
 */
export async function abortOrphanedRuns(db: Db, now = new Date()): Promise<CheckRunRow[]> {
  const orphans = await runningRuns(db);
  for (const run of orphans) {
    const counts = await countRunVerdicts(db, run.id);
    const checked = counts.live + counts.dead + counts.exhausted + counts.unknown;
    await db.kysely
      .updateTable('check_runs')
      .set({ status: 'aborted', finished_at: db.dialect.time(now), error: 'the process running it stopped', checked, ...counts })
      .where('id', '=', run.id)
      .where('status', '=', 'running')
      .execute();
  }
  return orphans;
}

export async function runningRuns(db: Db): Promise<CheckRunRow[]> {
  return db.kysely.selectFrom('check_runs').selectAll().where('status', '=', 'running').orderBy('id').execute();
}

export async function findRunProviders(db: Db, runId: number) {
  return db.kysely.selectFrom('check_run_providers').selectAll().where('run_id', '=', runId).orderBy('provider_name').execute();
}

/** Each provider's latest outcome: what /metrics tells, whichever process ran it. */
export async function lastProviderOutcomes(db: Db) {
  const latest = db.kysely
    .selectFrom('check_run_providers')
    .select(['provider_id', (eb) => eb.fn.max('run_id').as('last_run')])
    .groupBy('provider_id')
    .as('latest');
  return db.kysely
    .selectFrom('check_run_providers as o')
    .innerJoin(latest, (j) => j.onRef('latest.provider_id', '=', 'o.provider_id').onRef('latest.last_run', '=', 'o.run_id'))
    .selectAll('o')
    .execute();
}

/** Deletes runs that finished before the cutoff, with their per-provider rows; returns how many runs went. */
export async function trimRuns(db: Db, finishedBefore: Date): Promise<number> {
  const cutoff = db.dialect.time(finishedBefore);
  return db.kysely.transaction().execute(async (trx) => {
    await trx
      .deleteFrom('check_run_providers')
      .where('run_id', 'in', (eb) =>
        eb.selectFrom('check_runs').select('id').where('status', '!=', 'running').where('finished_at', '<', cutoff),
      )
      .execute();
    const r = await trx.deleteFrom('check_runs').where('status', '!=', 'running').where('finished_at', '<', cutoff).executeTakeFirst();
    return Number(r.numDeletedRows);
  });
}

export async function listRuns(db: Db, limit: number, beforeId?: number): Promise<CheckRunRow[]> {
  let q = db.kysely.selectFrom('check_runs').selectAll();
  if (beforeId !== undefined) q = q.where('id', '<', beforeId);
  return q.orderBy('id', 'desc').limit(limit).execute();
}

export async function findRun(db: Db, id: number): Promise<CheckRunRow | undefined> {
  return db.kysely.selectFrom('check_runs').selectAll().where('id', '=', id).executeTakeFirst();
}

/** The newest run still running. */
export async function latestRunningRun(db: Db): Promise<CheckRunRow | undefined> {
  return db.kysely.selectFrom('check_runs').selectAll().where('status', '=', 'running').orderBy('id', 'desc').limit(1).executeTakeFirst();
}

export async function lastFinishedRun(db: Db): Promise<CheckRunRow | undefined> {
  return db.kysely.selectFrom('check_runs').selectAll().where('status', '!=', 'running').orderBy('id', 'desc').limit(1).executeTakeFirst();
}

/** When the last run that completed (status done) finished. */
export async function lastCompletedAt(db: Db): Promise<Date | null> {
  const r = await db.kysely
    .selectFrom('check_runs')
    .select((eb) => eb.fn.max('finished_at').as('at'))
    .where('status', '=', 'done')
    .executeTakeFirst();
  return db.dialect.readTime(r?.at);
}
