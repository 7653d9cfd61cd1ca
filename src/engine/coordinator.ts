import { abortOrphanedRuns, findRun } from '../db/runs.js';
import { readLease, releaseLease, renewLease, setLeaseRun, tickTaken, tryAcquireLease, type LeaseState } from '../db/lease.js';
import { isTransient } from '../db/errors.js';
import { sleep } from './limits.js';
import type { EngineContext } from '../context.js';
import { runChecks } from './run.js';
import type { HeldRun, LeaseSettings, RunControl, RunRequest, RunSummary, StartedRun, StartOptions } from './types.js';

export type { HeldRun, LeaseSettings, StartedRun, StartOptions } from './types.js';
import { summaryFromDb } from './stored-summary.js';

/** A read that met a busy database: asked again at the next poll. */
const BUSY = Symbol('busy');

interface Pending {
  req: RunRequest;
  promise: Promise<RunSummary>;
  /** Resolves once the run's row is opened; rejects if the run fails before that. */
  runId: Promise<number>;
  openedId?: number;
}

/** Another run is in flight and does not cover the request (`whenBusy: 'refuse'`). */
export class RunBusyError extends Error {
  override name = 'RunBusyError';
  constructor(readonly held: HeldRun) {
    super(`run ${held.runId ?? '(opening)'} is in flight${held.host ? ` on ${held.host} (pid ${held.pid})` : ''}`);
  }
}

/** The cron tick was taken by another process: it runs that tick, this one does nothing. */
export class TickTakenError extends Error {
  override name = 'TickTakenError';
}

/**
 * Runs one at a time, across every process on the database (the engine counts consecutive dead
 * verdicts; two runs at once would count twice). In this process a request that the run in
 * flight or a queued run covers joins it, so a burst of legacy calls makes one run. Across
 * processes the `run` lease decides: a request covered by another process's run waits for it and
 * answers with its stored summary; any other waits for the lease, or is refused.
 */
export class RunCoordinator implements RunControl {
  private current: Pending | undefined;
  private queued: Pending[] = [];
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly ctx: EngineContext,
    readonly lease: LeaseSettings,
  ) {}

  request(req: RunRequest, opts: StartOptions = {}): Promise<RunSummary> {
    return this.start(req, opts).summary;
  }

  /** Like `request`, and also tells the id of the run that will answer it, once its row exists. */
  start(req: RunRequest, opts: StartOptions = {}): StartedRun {
    const joined = [this.current, ...this.queued].find((p) => p !== undefined && covers(p.req, req));
    if (joined) return { runId: joined.runId, summary: joined.promise };
    const inFlight = this.current ?? this.queued[0];
    if (opts.whenBusy === 'refuse' && inFlight) {
      const summary = Promise.reject(new RunBusyError(this.localRun(inFlight)));
      summary.catch(() => {});
      return { runId: summary, summary };
    }
    let opened!: (id: number) => void;
    let failed!: (err: unknown) => void;
    const runId = new Promise<number>((resolve, reject) => ((opened = resolve), (failed = reject)));
    runId.catch(() => {});
    const pending: Pending = { req, promise: undefined as unknown as Promise<RunSummary>, runId };
    const open = (id: number) => {
      pending.openedId = id;
      opened(id);
    };
    pending.promise = this.tail.then(async () => {
      this.queued = this.queued.filter((q) => q !== pending);
      this.current = pending;
      try {
        return await this.runWhenFree(req, opts, open);
      } catch (err) {
        failed(err);
        throw err;
      } finally {
        this.current = undefined;
      }
    });
    this.queued.push(pending);
    this.tail = pending.promise.catch(() => {});
    return { runId, summary: pending.promise };
  }

  get busy(): boolean {
    return this.current !== undefined || this.queued.length > 0;
  }

  /** Resolves when every run requested so far has finished. */
  async idle(): Promise<void> {
    for (let seen: Promise<unknown> | undefined; seen !== this.tail;) {
      seen = this.tail;
      await seen;
    }
  }

  private localRun(p: Pending): HeldRun {
    const { holder } = this.lease;
    return { runId: p.openedId ?? null, host: holder.host, pid: holder.pid, since: null, scope: p.req };
  }

  private async runWhenFree(req: RunRequest, opts: StartOptions, opened: (id: number) => void): Promise<RunSummary> {
    const { db, stopSignal } = this.ctx;
    const { holder, ttlMs, pollMs } = this.lease;
    let told = false;
    for (;;) {
      if (stopSignal?.aborted) throw new Error('tschk is shutting down');
      const acquired = await this.whileWaiting(() => tryAcquireLease(db, 'run', holder, ttlMs, { ...req, tick: req.tick }));
      if (acquired === true) return this.runHoldingLease(req, opened);
      if (req.tick && (await this.whileWaiting(() => tickTaken(db, 'run', req.tick!))) === true)
        throw new TickTakenError(`cron tick ${req.tick.toISOString()} is run by another process`);
      const read = acquired === BUSY ? BUSY : await this.whileWaiting(() => readLease(db, 'run'));
      const lease = read === BUSY ? undefined : read;
      if (lease?.holder && !lease.expired) {
        const held = heldRun(lease);
        const joins = held.runId !== null && covers(held.scope, req);
        if (!joins && opts.whenBusy === 'refuse') throw new RunBusyError(held);
        if (!told) opts.onWait?.(held);
        told = true;
        if (joins) {
          opened(held.runId!);
          const summary = await this.waitForRun(held.runId!);
          if (summary) return summary;
          continue; // its holder died before closing it: take over
        }
      }
      await sleep(pollMs, stopSignal);
    }
  }

  /**
   * A lease attempt or a read while waiting for another process; BUSY when the database was busy
   * or away for a moment (a deadlock, SQLite's BUSY): the next poll asks again.
   */
  private async whileWaiting<T>(read: () => Promise<T>): Promise<T | typeof BUSY> {
    try {
      return await read();
    } catch (err) {
      if (!isTransient(this.ctx.db.dialect.name, err)) throw err;
      this.ctx.logger.debug(
        { err: err instanceof Error ? err.message : String(err) },
        'the database was busy while waiting for the run lease; asking again',
      );
      return BUSY;
    }
  }

  /** The summary of another process's run once it closes; undefined if its holder died first. */
  private async waitForRun(runId: number): Promise<RunSummary | undefined> {
    const { db, stopSignal } = this.ctx;
    for (;;) {
      const run = await this.whileWaiting(() => findRun(db, runId));
      if (run !== BUSY && run && run.status !== 'running') return summaryFromDb(db, run);
      const lease = run === BUSY ? BUSY : await this.whileWaiting(() => readLease(db, 'run'));
      if (lease !== BUSY && (!lease?.holder || lease.expired || lease.runId !== runId)) {
        // Closed meanwhile, or left for dead: look once more before taking over.
        const again = await this.whileWaiting(() => findRun(db, runId));
        if (again !== BUSY && again && again.status !== 'running') return summaryFromDb(db, again);
        if (again !== BUSY && (!lease?.holder || lease.expired)) return undefined;
      }
      if (stopSignal?.aborted) throw new Error('tschk is shutting down');
      await sleep(this.lease.pollMs, stopSignal);
    }
  }

  private async runHoldingLease(req: RunRequest, opened: (id: number) => void): Promise<RunSummary> {
    const { db, logger } = this.ctx;
    const { holder, ttlMs } = this.lease;
    const lost = new AbortController();
    const renewal = setInterval(
      () => {
        renewLease(db, 'run', holder.id, ttlMs).then(
          (held) => {
            if (!held && !lost.signal.aborted) {
              logger.error('run lease lost to another process: this run stops taking tokens');
              lost.abort();
            }
          },
          (err) => logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'run lease: renewal failed; retrying'),
        );
      },
      Math.max(50, Math.floor(ttlMs / 3)),
    );
    renewal.unref();
    try {
      const orphans = await abortOrphanedRuns(db);
      for (const o of orphans) logger.warn({ runId: Number(o.id) }, 'closed a run whose process stopped as aborted');
      const stopSignal = this.ctx.stopSignal ? AbortSignal.any([this.ctx.stopSignal, lost.signal]) : lost.signal;
      return await runChecks({ ...this.ctx, stopSignal }, req, {
        lease: { holderId: holder.id, ttlMs },
        // The lease names the run before anyone hears its id: a process that was told the id
        // (a 202) and looks at the lease finds the run there to join.
        onRunOpened: (id) => {
          void setLeaseRun(db, 'run', holder.id, id)
            .catch(() => {})
            .finally(() => opened(id));
        },
      });
    } finally {
      clearInterval(renewal);
      await releaseLease(db, 'run', holder.id).catch((err) =>
        logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'run lease: release failed; it expires by itself'),
      );
    }
  }
}

function heldRun(lease: LeaseState): HeldRun {
  return {
    runId: lease.runId,
    host: lease.host,
    pid: lease.pid,
    since: lease.acquiredAt,
    scope: {
      trigger: lease.trigger ?? 'cron',
      provider: lease.provider ?? undefined,
      pool: lease.pool ?? undefined,
      force: lease.force,
      forcePrune: lease.forcePrune,
      selection: lease.selection,
    },
  };
}

function covers(running: RunRequest, wanted: RunRequest): boolean {
  // A run of some tokens covers only a request for the same ones; a run of all covers any selection.
  if (running.selection !== undefined && JSON.stringify(running.selection) !== JSON.stringify(wanted.selection)) return false;
  if (wanted.forcePrune && !running.forcePrune) return false;
  if (wanted.force && !running.force) return false;
  if (running.provider !== undefined && running.provider !== wanted.provider) return false;
  if (running.pool !== undefined && running.pool !== wanted.pool) return false;
  return true;
}
