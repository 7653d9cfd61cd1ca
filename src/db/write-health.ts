import type { DialectName } from './dialect.js';
import { dbErrorCode, dbFault, describeDbError } from './errors.js';

export interface WriteHealthState {
  /** False when the last write the database was asked for failed for a reason of its own. */
  writable: boolean;
  /** Why, while not writable: the driver's message and code (never SQL or its values). */
  reason?: string;
  code?: string;
  fault?: 'storage_full' | 'storage';
  /** The first failure since the last success. */
  failingSince?: Date;
  lastSuccessAt?: Date;
}

export interface RetryNotice {
  attempt: number;
  delayMs: number;
  code: string | undefined;
  /** What was being written, e.g. "check results". */
  what: string;
}

/**
 * The outcome of the last write to one database, told by its driver (every commit and every
 * write outside a transaction) and read by /healthz. Only the database's own lasting failures
 * count (a full disk, a read-only or broken database), while reads may still work. A constraint
 * error is the statement's fault; a lost connection passes, and while it lasts reads fail too,
 * which /healthz reports by itself.
 */
export class WriteHealth {
  private current: WriteHealthState = { writable: true };
  private waiting: Array<() => void> = [];
  private readonly now: () => Date;

  constructor(
    private readonly dialect: DialectName,
    private readonly opts: { onRetry?: (err: unknown, notice: RetryNotice) => void; now?: () => Date } = {},
  ) {
    this.now = opts.now ?? (() => new Date());
  }

  get state(): Readonly<WriteHealthState> {
    return this.current;
  }

  succeeded(): void {
    const wasFailing = !this.current.writable;
    this.current = { writable: true, lastSuccessAt: this.now() };
    if (wasFailing || this.waiting.length > 0) {
      const waiting = this.waiting;
      this.waiting = [];
      for (const wake of waiting) wake();
    }
  }

  /** Records the failure when it is a lasting one of the database; returns whether it was. */
  failed(err: unknown): boolean {
    const fault = dbFault(this.dialect, err);
    if (fault !== 'storage_full' && fault !== 'storage') return false;
    this.current = {
      writable: false,
      reason: describeDbError(err),
      code: dbErrorCode(err),
      fault,
      failingSince: this.current.writable ? this.now() : this.current.failingSince,
      lastSuccessAt: this.current.lastSuccessAt,
    };
    return true;
  }

  /** Resolves at the next successful write, or when the signal aborts. */
  nextSuccess(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.waiting = this.waiting.filter((w) => w !== done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      this.waiting.push(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  /** A writer runs a transaction again after a transient error (the daemon logs it). */
  retrying(err: unknown, notice: RetryNotice): void {
    this.opts.onRetry?.(err, notice);
  }
}
