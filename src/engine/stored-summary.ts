import type { Db } from '../db/connect.js';
import { findRunProviders } from '../db/runs.js';
import type { CheckRunRow } from '../db/schema.js';
import { emptyProviderSummary } from './run.js';
import type { ProviderRunSummary, RunSummary } from './types.js';

/**
 * A closed run's summary as the database keeps it, for a request that another process's run
 * answered. The counts are exact; the lists of tokens that changed are the running process's
 * alone (its log and its notifications have them), so they are empty here.
 */
export async function summaryFromDb(db: Db, run: CheckRunRow): Promise<RunSummary> {
  const started = db.dialect.readTime(run.started_at) ?? new Date(0);
  const finished = db.dialect.readTime(run.finished_at) ?? started;
  const providers: ProviderRunSummary[] = (await findRunProviders(db, Number(run.id))).map((p) => ({
    ...emptyProviderSummary(p.provider_name, ''),
    checked: Number(p.checked),
    live: Number(p.live),
    dead: Number(p.dead),
    exhausted: Number(p.exhausted),
    unknown: Number(p.unknown),
    pruned: Number(p.pruned),
    held: Number(p.held),
    unreachable: Number(p.unreachable) === 1,
    unreliable: Number(p.unreliable) === 1,
    ...(p.held_reason ? { heldReason: p.held_reason } : {}),
    ...(p.error ? { error: p.error } : {}),
  }));
  return {
    runId: Number(run.id),
    trigger: run.trigger,
    scope: run.scope,
    status: run.status === 'running' ? 'aborted' : run.status,
    startedAt: started.toISOString(),
    finishedAt: finished.toISOString(),
    durationMs: finished.getTime() - started.getTime(),
    checked: Number(run.checked),
    live: Number(run.live),
    dead: Number(run.dead),
    exhausted: Number(run.exhausted),
    unknown: Number(run.unknown),
    pruned: Number(run.pruned),
    held: Number(run.held),
    providers,
    ...(run.error ? { error: run.error } : {}),
  };
}
