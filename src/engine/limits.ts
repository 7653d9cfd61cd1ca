/** Counting semaphore; waiters are served in order. */
export class Semaphore {
  private waiters: Array<() => void> = [];
  constructor(private available: number) {}

  async acquire(): Promise<void> {
    if (this.available > 0) {
      this.available--;
      return;
    }
    await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  release(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.available++;
  }
}

/** The time and the waits of the engine: tests bring one that moves only when asked to. */
export interface Clock {
  now(): number;
  /** Resolves after ms, or early when the signal aborts. Never rejects. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const realClock: Clock = { now: () => Date.now(), sleep: (ms, signal) => sleep(ms, signal) };

/** Holds every check of one provider while it asked us to back off (429 Retry-After). */
export class ProviderGate {
  private until = 0;

  constructor(private readonly clock: Clock = realClock) {}

  pauseFor(ms: number, now = this.clock.now()): void {
    this.until = Math.max(this.until, now + ms);
  }

  async wait(signal?: AbortSignal): Promise<void> {
    for (let left = this.until - this.clock.now(); left > 0; left = this.until - this.clock.now()) {
      await this.clock.sleep(left, signal);
      if (signal?.aborted) return;
    }
  }
}

/** Resolves after ms, or early when the signal aborts. Never rejects. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0 || signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
