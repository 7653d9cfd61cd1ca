import { CronSchedule } from './cron.js';
import type { Logger } from './logger.js';

export interface Job {
  name: string;
  cron: string;
  /** `tick`: the time the schedule matched, the same in every process that shares the schedule. */
  run: (tick: Date) => Promise<unknown>;
}

/** A long wait is taken in pieces, so that a wall clock set forward or back is noticed soon. */
const LONGEST_WAIT_MS = 60_000;

/** Cron jobs that never overlap themselves: a tick while one runs is skipped and logged; a failed job is logged, not thrown. */
export class Scheduler {
  private timers = new Map<string, NodeJS.Timeout>();
  private stopped = false;

  constructor(
    private readonly jobs: readonly Job[],
    private readonly timezone: string | undefined,
    private readonly logger: Logger,
  ) {}

  start(): void {
    for (const job of this.jobs) {
      const log = this.logger.child({ job: job.name });
      const schedule = new CronSchedule(job.cron, this.timezone);
      const next = schedule.next(new Date());
      log.info({ cron: job.cron, next: next?.toISOString() }, 'job scheduled');
      let running = false;
      const fire = (tick: Date) => {
        if (running) {
          log.warn({ tick: tick.toISOString() }, 'tick skipped: the previous one is still running');
          return;
        }
        running = true;
        job
          .run(tick)
          .catch((err: unknown) => log.error({ err: err instanceof Error ? err.message : String(err) }, 'scheduled job failed'))
          .finally(() => (running = false));
      };
      this.wait(job.name, schedule, next, fire);
    }
  }

  private wait(name: string, schedule: CronSchedule, tick: Date | null, fire: (tick: Date) => void): void {
    if (!tick || this.stopped) return;
    const timer = setTimeout(
      () => {
        const now = Date.now();
        if (now < tick.getTime()) return this.wait(name, schedule, tick, fire);
        fire(tick);
        // Ticks that passed while the event loop was held are not made up for.
        this.wait(name, schedule, schedule.next(new Date(Math.max(now, tick.getTime()))), fire);
      },
      Math.min(LONGEST_WAIT_MS, Math.max(0, tick.getTime() - Date.now())),
    );
    this.timers.set(name, timer);
  }

  /** No new ticks after this; a job in flight is awaited by its owner, not here. */
  stop(): void {
    this.stopped = true;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }
}
