/**
 * Lets the history keeper ask a run's writes to wait a moment, without blocking the event loop:
 * an SQLite checkpoint in another thread empties the WAL only if nothing is written while it
 * copies (docs/database-backends.md, "Checkpoints off the event loop").
 */
export class WritePause {
  private current: Promise<unknown> | undefined;

  /** Settles at once, or when the pause in force ends. */
  async wait(): Promise<void> {
    while (this.current) await this.current;
  }

  /** Writes wait while `fn` runs, for at most `maxMs`: a stuck `fn` does not hold them for longer. */
  during<T>(fn: () => Promise<T>, maxMs: number): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const work = fn();
    const over = new Promise((resolve) => (timer = setTimeout(resolve, maxMs)));
    const pause = (this.current = Promise.race([work.catch(() => undefined), over]).finally(() => {
      clearTimeout(timer);
      if (this.current === pause) this.current = undefined;
    }));
    return work;
  }
}
