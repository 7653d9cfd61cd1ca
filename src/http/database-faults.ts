import type { DialectName } from '../db/dialect.js';
import { dbFault, describeDbError } from '../db/errors.js';
import { isDatabaseError } from '../db/observed-dialect.js';
import type { Logger } from '../logger.js';
import { errorBody, type Reply } from './router.js';

/**
 * A request that failed because the database could not serve it is the server's fault, not the
 * caller's: 503 with what went wrong (the driver's message names no value for these errors).
 */
export function databaseFaultReply(dialect: DialectName, err: unknown, log: Logger): Reply | undefined {
  // A socket error of an upstream, or ENOSPC from a token file, is not the database's.
  const fault = isDatabaseError(err) ? dbFault(dialect, err) : undefined;
  if (fault === undefined) return undefined;
  const why = describeDbError(err);
  log.warn({ fault, err: why }, 'request failed: the database could not serve it');
  switch (fault) {
    case 'storage_full':
      return { status: 503, json: errorBody('storage_full', `the database cannot store anything more (${why}); free space on its disk`) };
    case 'storage':
      return { status: 503, json: errorBody('storage_unavailable', `the database does not take writes (${why})`) };
    case 'transient':
      return {
        status: 503,
        json: errorBody('database_unavailable', `the database is unavailable (${why}); try again shortly`),
        headers: { 'Retry-After': '5' },
      };
  }
}
