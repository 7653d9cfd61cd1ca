import type { AppContext } from '../daemon.js';
import { lastFinishedRun } from '../db/runs.js';
import type { CheckRunRow } from '../db/schema.js';
import { reply, type Route } from './router.js';

/** A run as the JSON API and /healthz show it. */
export function runView(run: CheckRunRow, app: AppContext) {
  const time = (v: unknown) => app.db.dialect.readTime(v)?.toISOString() ?? null;
  return {
    id: Number(run.id),
    trigger: run.trigger,
    scope: run.scope,
    status: run.status,
    started_at: time(run.started_at),
    finished_at: time(run.finished_at),
    checked: Number(run.checked),
    live: Number(run.live),
    dead: Number(run.dead),
    exhausted: Number(run.exhausted),
    unknown: Number(run.unknown),
    pruned: Number(run.pruned),
    held: Number(run.held),
    error: run.error,
  };
}

/** 200 when the database answers a query on tschk's own tables, 503 otherwise; open to any caller. */
async function health(app: AppContext) {
  let last: CheckRunRow | undefined;
  try {
    last = await lastFinishedRun(app.db);
  } catch (err) {
    app.logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'health check: database query failed');
    return reply(503, { status: 'error', db: 'error', lastRun: null });
  }
  return reply(200, { status: 'ok', db: 'ok', lastRun: last ? runView(last, app) : null });
}

export const healthRoutes: Route[] = [{ method: 'GET', path: '/healthz', auth: 'none', handler: (_req, app) => health(app) }];
