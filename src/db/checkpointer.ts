import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

// With `synchronous = NORMAL`, a WAL checkpoint is what fsyncs (the WAL before it, the database
// file after it), on the thread that runs it: on the event loop, each fsync of a 1.5 GB file
// stalled it for up to ~100 ms. On a connection of its own in a worker thread, a checkpoint
// blocks only that thread (docs/database-backends.md, "Checkpoints off the event loop").
// The worker's code is a string run with `eval`: it needs no file of its own beside the sources,
// the tests' TypeScript or the built JavaScript.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
let db;
const fail = (err) => {
  parentPort.postMessage({ failed: err.code ? err.code + ': ' + err.message : String(err.message ?? err) });
  parentPort.close();
};
try {
  db = new (require(workerData.driver))(workerData.path, { fileMustExist: true });
  db.pragma('synchronous = ' + workerData.synchronous);
} catch (err) {
  fail(err);
}
parentPort.on('message', (m) => {
  try {
    parentPort.postMessage(db.pragma('wal_checkpoint(PASSIVE)')[0]);
  } catch (err) {
    return fail(err);
  }
  if (m === 'stop') {
    db.close();
    parentPort.close();
  }
});
`;

/** What one checkpoint saw: frames in the WAL, and how many of them are now in the file. */
export interface CheckpointOutcome {
  busy: number;
  log: number;
  checkpointed: number;
}

export interface Checkpointer {
  /** Copies the WAL back into the file; undefined once the thread has failed. */
  checkpoint(): Promise<CheckpointOutcome | undefined>;
  /** Checkpoints once more, then closes its connection and ends its thread. */
  stop(): Promise<void>;
}

/** better-sqlite3, for the worker to load: the same copy as this process's connections. */
const driver = createRequire(import.meta.url).resolve('better-sqlite3');

/** A checkpoint of at most a 64 MB WAL that takes longer is stuck (a failing disk, a hung mount). */
const CHECKPOINT_ANSWER_MS = 10_000;

/** The SQLite file, and the `synchronous` level of the connection the thread works for. */
export interface CheckpointTarget {
  path: string;
  synchronous: number;
}

/**
 * A connection of its own to the SQLite file, in a worker thread, that checkpoints when asked (one
 * checkpoint at a time, in the order asked). `onFailure` is told once when the thread dies (it
 * could not open the file, a checkpoint failed, the last one at the stop included) or does not
 * answer within `answerMs`; later checkpoints then do nothing.
 */
export function startCheckpointer(
  target: CheckpointTarget,
  onFailure: (err: unknown) => void,
  answerMs = CHECKPOINT_ANSWER_MS,
): Checkpointer {
  const worker = new Worker(WORKER, { eval: true, workerData: { driver, ...target } });
  // Held only while asked: a process that ends without stopping it does not wait for it (a
  // checkpoint cut short is safe), and one that awaits a checkpoint is not ended under it.
  worker.unref();
  const waiting: Array<(r: CheckpointOutcome | undefined) => void> = [];
  let alive = true;
  let stopping = false;
  let told = false;
  let hung = false;
  const end = () => {
    alive = false;
    for (const answer of waiting.splice(0)) answer(undefined);
  };
  const failed = (err: unknown) => {
    end();
    if (!told) onFailure(err);
    told = true;
  };
  let ended!: () => void;
  const exited = new Promise<void>((resolve) => (ended = resolve));
  worker.on('message', (r: CheckpointOutcome | { failed: string }) => {
    if ('failed' in r) return failed(new Error(`the checkpoint thread failed: ${r.failed}`));
    waiting.shift()?.(r);
    if (waiting.length === 0 && !stopping) worker.unref();
  });
  worker.on('error', failed);
  worker.on('exit', (code) => {
    ended();
    // Asked to stop, a thread that checkpointed closes its port and so ends with 0.
    if (stopping && code === 0) return end();
    failed(new Error(`the checkpoint thread exited with code ${code}`));
  });
  const ask = (message: 'checkpoint' | 'stop') =>
    new Promise<CheckpointOutcome | undefined>((resolve) => {
      if (!alive) return resolve(undefined);
      const timer = setTimeout(() => {
        hung = true;
        failed(new Error(`the checkpoint thread did not answer within ${answerMs} ms`));
        void worker.terminate();
      }, answerMs);
      waiting.push((r) => {
        clearTimeout(timer);
        resolve(r);
      });
      worker.ref();
      worker.postMessage(message);
    });
  return {
    checkpoint: () => (stopping ? Promise.resolve(undefined) : ask('checkpoint')),
    async stop() {
      if (!stopping) {
        stopping = true;
        await ask('stop');
      }
      // Stuck in a native call, a thread ends only once it returns: that is not waited for.
      if (hung) return void worker.unref();
      worker.ref();
      await exited;
    },
  };
}
