import { runChecks, type EngineContext, type RunRequest, type RunSummary } from './run.js';

interface Pending {
  req: RunRequest;
  promise: Promise<RunSummary>;
  /** Resolves once the run's row is opened; rejects if the run fails before that. */
  runId: Promise<number>;
}

export interface StartedRun {
  runId: Promise<number>;
  summary: Promise<RunSummary>;
}

/**
 * Runs one at a time (the engine counts consecutive dead verdicts, two runs at once would count
 * twice). A request that the run in flight or a queued run covers joins it, so a burst of legacy
 * calls makes one run.
 */
export class RunCoordinator {
  private current: Pending | undefined;
  private queued: Pending[] = [];
  private tail: Promise<unknown> = Promise.resolve();

  constructor(private readonly ctx: EngineContext) {}

  request(req: RunRequest): Promise<RunSummary> {
    return this.start(req).summary;
  }

  /** Like `request`, and also tells the id of the run that will answer it, once its row exists. */
  start(req: RunRequest): StartedRun {
    const joined = [this.current, ...this.queued].find((p) => p !== undefined && covers(p.req, req));
    if (joined) return { runId: joined.runId, summary: joined.promise };
    let opened!: (id: number) => void;
    let failed!: (err: unknown) => void;
    const runId = new Promise<number>((resolve, reject) => ((opened = resolve), (failed = reject)));
    runId.catch(() => {});
    const pending: Pending = { req, promise: undefined as unknown as Promise<RunSummary>, runId };
    pending.promise = this.tail.then(async () => {
      this.queued = this.queued.filter((q) => q !== pending);
      this.current = pending;
      try {
        return await runChecks(this.ctx, req, opened);
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
    for (let seen: Promise<unknown> | undefined; seen !== this.tail; ) {
      seen = this.tail;
      await seen;
    }
  }
}

function covers(running: RunRequest, wanted: RunRequest): boolean {
  if (wanted.forcePrune && !running.forcePrune) return false;
  if (wanted.force && !running.force) return false;
  if (running.provider !== undefined && running.provider !== wanted.provider) return false;
  if (running.pool !== undefined && running.pool !== wanted.pool) return false;
  return true;
}
