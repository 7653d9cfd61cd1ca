import type { Logger } from '../logger.js';
import type { OpenOptions } from './connect.js';
import { dbErrorCode, describeDbError } from './errors.js';

/** The daemon's warn lines for a database that goes away: one per lost connection, one per retry. */
export function faultLogging(logger: Logger): Pick<OpenOptions, 'onError' | 'onRetry'> {
  const log = logger.child({ area: 'db' });
  return {
    onError: (err) =>
      log.warn({ code: dbErrorCode(err), err: describeDbError(err) }, 'database connection lost; the next query opens a new one'),
    onRetry: (err, n) =>
      log.warn(
        { code: n.code, attempt: n.attempt, retryInMs: n.delayMs, err: describeDbError(err) },
        `${n.what}: transient database error; running the whole transaction again`,
      ),
  };
}
