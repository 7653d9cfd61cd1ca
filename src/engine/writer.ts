import type { Db } from '../db/connect.js';
import { describeDbError, withRetry, type RetryOptions } from '../db/errors.js';
import { recordChecks, type CheckRecord, type RecordOptions } from '../db/history.js';

export type WriterRetry = Partial<Omit<RetryOptions, 'dialect' | 'onRetry'>>;

/**
 * A batch whose transaction met a transient error (a restart, a failover, a deadlock) is written
 * again, whole: six tries over about 4 to 8 s ride out a routine database restart.
 */
export const WRITER_RETRY = { attempts: 6, baseMs: 250, maxMs: 4_000 } as const;

/** The batch could not be written: the run fails with this, its cause is the driver's error. */
export class HistoryWriteError extends Error {
  override name = 'HistoryWriteError';
}

/**
 * Buffers check records and writes them in batched transactions, one at a time. A crash loses
 * at most the buffer; callers that add while a full buffer is being written wait (backpressure),
 * so memory stays flat however many tokens a run has.
 */
export class BatchWriter {
  private buffer: CheckRecord[] = [];
  private writing: Promise<void> = Promise.resolve();
  private failure: HistoryWriteError | undefined;
  private timer: NodeJS.Timeout;

  constructor(
    private readonly db: Db,
    private readonly options: RecordOptions = {},
    private readonly batchSize = 500,
    flushEveryMs = 1_000,
    private readonly retry: WriterRetry = {},
  ) {
    this.timer = setInterval(() => void this.flush().catch(() => {}), flushEveryMs);
    this.timer.unref();
  }

  async add(record: CheckRecord): Promise<void> {
    if (this.failure) throw this.failure;
    this.buffer.push(record);
    if (this.buffer.length >= this.batchSize) await this.flush();
  }

  /** Writes everything buffered so far; rejects if any batch failed (after its retries). */
  flush(): Promise<void> {
    const batch = this.buffer;
    this.buffer = [];
    this.writing = this.writing.then(async () => {
      if (this.failure || batch.length === 0) return;
      const attempts = this.retry.attempts ?? WRITER_RETRY.attempts;
      let tries = 0;
      try {
        await withRetry(
          () => {
            tries++;
            return recordChecks(this.db, batch, this.options);
          },
          {
            ...WRITER_RETRY,
            ...this.retry,
            attempts,
            dialect: this.db.dialect.name,
            onRetry: (err, info) => this.db.writes.retrying(err, { ...info, what: 'check results' }),
          },
        );
      } catch (err) {
        const after = tries > 1 ? ` after ${tries} tries` : '';
        this.failure = new HistoryWriteError(`check results not written${after}: ${describeDbError(err)}`, { cause: err });
      }
    });
    return this.writing.then(() => {
      if (this.failure) throw this.failure;
    });
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}
