import { runChecks, runScope, type EngineContext, type RunRequest, type RunSummary } from './run.js';

interface Pending {
  req: RunRequest;
  promise: Promise<RunSummary>;
}

/**
 * Runs one at a time (the engine counts consecutive dead verdicts, two runs at once would count
 * twice). A request whose scope the run in flight covers joins it; an identical queued request
 * is shared, so a burst of legacy calls makes one run.
 */
export class RunCoordinator {
  private current: Pending | undefined;
  private queued: Pending[] = [];
  private tail: Promise<unknown> = Promise.resolve();

  constructor(private readonly ctx: EngineContext) {}

  request(req: RunRequest): Promise<RunSummary> {
    if (this.current && covers(this.current.req, req)) return this.current.promise;
    const same = this.queued.find((q) => runScope(q.req) === runScope(req) && !!q.req.force === !!req.force && !!q.req.forcePrune === !!req.forcePrune);
    if (same) return same.promise;
    const pending: Pending = { req, promise: undefined as unknown as Promise<RunSummary> };
    pending.promise = this.tail.then(async () => {
      this.queued = this.queued.filter((q) => q !== pending);
      this.current = pending;
      try {
        return await runChecks(this.ctx, req);
      } finally {
        this.current = undefined;
      }
    });
    this.queued.push(pending);
    this.tail = pending.promise.catch(() => {});
    return pending.promise;
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
  if (running.provider !== undefined && running.provider !== wanted.provider) return false;
  if (running.pool !== undefined && running.pool !== wanted.pool) return false;
  return true;
}
