import { CronSchedule } from './cron.js';
import { realClock, type Clock } from './engine/limits.js';
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
  private readonly stopper = new AbortController();

  constructor(
    private readonly jobs: readonly Job[],
    private readonly timezone: string | undefined,
    private readonly logger: Logger,
    private readonly clock: Clock = realClock,
  ) {}

  start(): void {
    for (const job of this.jobs) {
      const log = this.logger.child({ job: job.name });
      const schedule = new CronSchedule(job.cron, this.timezone);
      const next = schedule.next(new Date(this.clock.now()));
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
          .finally(() => {
            running = false;
            log.debug({ tick: tick.toISOString() }, 'tick done');
          });
      };
      void this.follow(schedule, next, fire);
    }
  }

  private async follow(schedule: CronSchedule, first: Date | null, fire: (tick: Date) => void): Promise<void> {
    const { signal } = this.stopper;
    for (let tick = first; tick && !signal.aborted;) {
      await this.clock.sleep(Math.min(LONGEST_WAIT_MS, tick.getTime() - this.clock.now()), signal);
      const now = this.clock.now();
      if (signal.aborted || now < tick.getTime()) continue;
      fire(tick);
      // Ticks that passed while the event loop was held are not made up for.
      tick = schedule.next(new Date(Math.max(now, tick.getTime())));
    }
  }

  /** No new ticks after this; a job in flight is awaited by its owner, not here. */
  stop(): void {
    this.stopper.abort();
  }
}
