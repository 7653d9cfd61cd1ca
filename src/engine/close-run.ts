import type { CloseRunContext } from '../context.js';
import { dbErrorCode, dbFault, defaultSleep, describeDbError, retryDelay } from '../db/errors.js';

export interface CloseRetryTiming {
  baseMs: number;
  /** The longest wait between two tries; a write that succeeds meanwhile wakes the closer at once. */
  maxMs: number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  random?: () => number;
}

export const CLOSE_RETRY: CloseRetryTiming = { baseMs: 250, maxMs: 5_000 };

/**
 * Closes a run's row with `close`. When the database does not take the write (it is restarting,
 * the disk is full), the run must not stay `running` for the life of the process: the close is
 * tried again in the background, with backoff and at once after any other write succeeds, until
 * it succeeds or the daemon stops. Resolves once the first try is over: true when it closed the
 * row. An error that is not the database's (a bug) is thrown, as before. The background tries end
 * when `ctx.stopSignal` aborts (the daemon stops); the next start closes the row.
 */
export async function closeRunWhenPossible(
  ctx: CloseRunContext,
  runId: number,
  close: () => Promise<unknown>,
  timing: CloseRetryTiming = CLOSE_RETRY,
): Promise<boolean> {
  try {
    await close();
    return true;
  } catch (err) {
    if (!dbFault(ctx.db.dialect.name, err)) throw err;
    ctx.logger.warn(
      { runId, code: dbErrorCode(err), err: describeDbError(err) },
      'the run row cannot be closed now: the database does not take writes; trying again in the background',
    );
    void keepClosing(ctx, runId, close, timing).catch((e: unknown) =>
      ctx.logger.error({ runId, err: e instanceof Error ? e.message : String(e) }, 'the run row cannot be closed'),
    );
    return false;
  }
}

async function keepClosing(ctx: CloseRunContext, runId: number, close: () => Promise<unknown>, timing: CloseRetryTiming): Promise<void> {
  const { db, logger, stopSignal } = ctx;
  const sleep = timing.sleep ?? ((ms: number, signal?: AbortSignal) => defaultSleep(ms, signal, true));
  for (let attempt = 1; ; attempt++) {
    const wake = new AbortController();
    const onStop = () => wake.abort();
    stopSignal?.addEventListener('abort', onStop, { once: true });
    await Promise.race([sleep(retryDelay(attempt, { ...timing }), wake.signal), db.writes.nextSuccess(wake.signal)]);
    wake.abort();
    stopSignal?.removeEventListener('abort', onStop);
    if (stopSignal?.aborted) {
      logger.warn({ runId }, 'stopping with the run row still open: the next start closes it');
      return;
    }
    try {
      await close();
      logger.info({ runId, tries: attempt + 1 }, 'run row closed now that the database takes writes again');
      return;
    } catch (err) {
      if (stopSignal?.aborted) {
        logger.warn({ runId }, 'stopping with the run row still open: the next start closes it');
        return;
      }
      if (!dbFault(db.dialect.name, err)) {
        logger.error({ runId, err: err instanceof Error ? err.message : String(err) }, 'the run row cannot be closed');
        return;
      }
      if (attempt === 1 || attempt % 10 === 0) {
        logger.warn(
          { runId, code: dbErrorCode(err), err: describeDbError(err), tries: attempt + 1 },
          'the run row still cannot be closed; trying again',
        );
      }
    }
  }
}
