import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from './logger.js';

export interface Job {
  name: string;
  cron: string;
  run: () => Promise<unknown>;
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
      const task = cron.schedule(
        job.cron,
        async () => {
          try {
            await job.run();
          } catch (err) {
            this.logger.error({ job: job.name, err: err instanceof Error ? err.message : String(err) }, 'scheduled job failed');
          }
        },
        { name: job.name, timezone: this.timezone, noOverlap: true },
      );
      this.tasks.push(task);
      this.logger.info({ job: job.name, cron: job.cron, next: task.getNextRun()?.toISOString() }, 'job scheduled');
    }
  }

  /** No new ticks after this; a job in flight is awaited by its owner, not here. */
  async stop(): Promise<void> {
    const tasks = this.tasks;
    this.tasks = [];
    await Promise.all(tasks.map((t) => t.destroy()));
  }
}
