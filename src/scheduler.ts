import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from './logger.js';

export interface Job {
  name: string;
  cron: string;
  /** `tick`: the time the schedule matched, the same in every process that shares the schedule. */
  run: (tick: Date) => Promise<unknown>;
}

/** node-cron tasks that never overlap themselves; a failed job is logged, not thrown. */
export class Scheduler {
  private tasks: ScheduledTask[] = [];

  constructor(
    private readonly jobs: readonly Job[],
    private readonly timezone: string | undefined,
    private readonly logger: Logger,
  ) {}

  start(): void {
    for (const job of this.jobs) {
      const log = this.logger.child({ job: job.name });
      const task = cron.schedule(
        job.cron,
        async (ctx) => {
          try {
            await job.run(ctx.date);
          } catch (err) {
            log.error({ err: err instanceof Error ? err.message : String(err) }, 'scheduled job failed');
          }
        },
        // node-cron's own lines (coloured text on stderr) become JSON lines like every other.
        { name: job.name, timezone: this.timezone, noOverlap: true, logger: cronLogger(log) },
      );
      task.on('execution:overlap', (ctx) => log.warn({ tick: ctx.date.toISOString() }, 'tick skipped: the previous one is still running'));
      this.tasks.push(task);
      log.info({ cron: job.cron, next: task.getNextRun()?.toISOString() }, 'job scheduled');
    }
  }

  /** No new ticks after this; a job in flight is awaited by its owner, not here. */
  async stop(): Promise<void> {
    const tasks = this.tasks;
    this.tasks = [];
    await Promise.all(tasks.map((t) => Promise.resolve(t.destroy())));
  }
}

const OVERLAP = /overlap prevention/;

function cronLogger(log: Logger) {
  const text = (m: string | Error) => (m instanceof Error ? m.message : m);
  return {
    info: (m: string) => log.debug(text(m)),
    // The overlap warning is logged once per tick by the 'execution:overlap' listener, with the tick.
    warn: (m: string) => (OVERLAP.test(m) ? undefined : log.warn(text(m))),
    error: (m: string | Error, err?: Error) => log.error({ err: err?.message }, text(m)),
    debug: (m: string | Error) => log.debug(text(m)),
  };
}
