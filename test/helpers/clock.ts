import type { Clock } from '../../src/engine/limits.js';

/**
 * A clock that moves only by the waits asked of it: a sleep returns (on the next turn of the
 * event loop) with the time advanced by its length, and is recorded. Back-offs and Retry-After
 * pauses then cost nothing, and a test asserts the waits themselves.
 */
export class TestClock implements Clock {
  private t = Date.parse('2026-01-01T00:00:00Z');
  readonly sleeps: number[] = [];
  /** Called during each wait: what the world does meanwhile (a file written again, …). */
  onSleep?: (ms: number) => void;

  now(): number {
    return this.t;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (ms <= 0 || signal?.aborted) return Promise.resolve();
    this.sleeps.push(ms);
    this.t += ms;
    this.onSleep?.(ms);
    return new Promise((resolve) => setImmediate(resolve));
  }
}

/**
 * A clock that moves only when the test moves it: a sleep ends once `moveTo` passes its end. Two
 * replicas given one each see the same cron tick at moments the test chooses.
 */
export class ManualClock implements Clock {
  private readonly sleepers = new Set<{ until: number; wake: () => void }>();

  constructor(private t: number) {}

  now(): number {
    return this.t;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (ms <= 0 || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const sleeper = {
        until: this.t + ms,
        wake: () => {
          this.sleepers.delete(sleeper);
          signal?.removeEventListener('abort', sleeper.wake);
          resolve();
        },
      };
      this.sleepers.add(sleeper);
      signal?.addEventListener('abort', sleeper.wake, { once: true });
    });
  }

  moveTo(t: number): void {
    this.t = t;
    for (const s of [...this.sleepers]) if (s.until <= t) s.wake();
  }
}
