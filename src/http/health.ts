import type { AppContext } from '../daemon.js';
import { lastFinishedRun } from '../db/runs.js';
import type { CheckRunRow } from '../db/schema.js';
import { runView } from '../views.js';
import { reply, type Route } from './router.js';


/** 200 when the database answers a query on tschk's own tables, 503 otherwise; open to any caller. */
async function health(app: AppContext) {
  let last: CheckRunRow | undefined;
  try {
    last = await lastFinishedRun(app.db);
  } catch (err) {
    app.logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'health check: database query failed');
    return reply(503, { status: 'error', db: 'error', lastRun: null });
  }
  return reply(200, { status: 'ok', db: 'ok', lastRun: last ? runView(last, app.db.dialect) : null });
}

export const healthRoutes: Route[] = [{ method: 'GET', path: '/healthz', auth: 'none', handler: (_req, app) => health(app) }];
