import type { HttpContext } from '../context.js';
import { lastFinishedRun } from '../db/runs.js';
import type { CheckRunRow } from '../db/schema.js';
import { runView } from '../views.js';
import { reply, type Route } from './router.js';

/**
 * Open to any caller. 503 when the database does not answer a query on tschk's own tables;
 * 200 otherwise, with `status` "ok", or "degraded" and the reason while the last write failed
 * (a full disk, a read-only database): the daemon is up and serves what it has, but records
 * nothing. Degraded clears with the next write that succeeds.
 */
async function health(app: HttpContext) {
  let last: CheckRunRow | undefined;
  try {
    last = await lastFinishedRun(app.db);
  } catch (err) {
    app.logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'health check: database query failed');
    return reply(503, { status: 'error', db: 'error', lastRun: null });
  }
  const lastRun = last ? runView(last, app.db.dialect) : null;
  const writes = app.db.writes.state;
  if (!writes.writable) {
    return reply(200, {
      status: 'degraded',
      db: 'ok',
      reason: `the last database write failed: ${writes.reason}`,
      failingSince: writes.failingSince?.toISOString() ?? null,
      lastRun,
    });
  }
  return reply(200, { status: 'ok', db: 'ok', lastRun });
}

export const healthRoutes: Route[] = [{ method: 'GET', path: '/healthz', auth: 'none', handler: (_req, app) => health(app) }];
