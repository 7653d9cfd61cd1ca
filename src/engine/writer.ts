import type { Db } from '../db/connect.js';
import { recordChecks, type CheckRecord, type RecordOptions } from '../db/history.js';

/**
 * Buffers check records and writes them in batched transactions, one at a time. A crash loses
 * at most the buffer; callers that add while a full buffer is being written wait (backpressure),
 * so memory stays flat however many tokens a run has.
 */
export class BatchWriter {
  private buffer: CheckRecord[] = [];
  private writing: Promise<void> = Promise.resolve();
  private failure: unknown;
  private timer: NodeJS.Timeout;

  constructor(
    private readonly db: Db,
    private readonly options: RecordOptions = {},
    private readonly batchSize = 500,
    flushEveryMs = 1_000,
  ) {
    this.timer = setInterval(() => void this.flush().catch(() => {}), flushEveryMs);
    this.timer.unref();
  }

  async add(record: CheckRecord): Promise<void> {
    if (this.failure) throw this.failure;
    this.buffer.push(record);
    if (this.buffer.length >= this.batchSize) await this.flush();
  }

  /** Writes everything buffered so far; rejects if any batch failed. */
  flush(): Promise<void> {
    const batch = this.buffer;
    this.buffer = [];
    this.writing = this.writing.then(async () => {
      if (this.failure || batch.length === 0) return;
      try {
        await recordChecks(this.db, batch, this.options);
      } catch (err) {
        this.failure = err;
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
