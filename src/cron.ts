import { Cron } from 'croner';

/**
 * A cron expression of 5 or 6 fields (seconds first) read in a time zone, or in the system's
 * without one. Day of month and day of week must both match, as in tschk 0.1.0.
 *
 * croner reads the time of day with Date's own getters unless a zone is given; node-cron, used
 * before, formatted every date with Intl, whose ICU data kept ~8 MB resident in an idle daemon.
 */
export class CronSchedule {
  private readonly pattern: Cron;

  /** Throws a message for the user when the expression is not one. */
  constructor(
    readonly expression: string,
    timezone?: string,
  ) {
    this.pattern = new Cron(expression, { timezone, domAndDow: true });
  }

  /** The first time after `after` that the schedule matches, or null if it never does again. */
  next(after: Date): Date | null {
    return this.pattern.nextRun(after);
  }
}

/** Why `expression` is not a cron expression, or undefined if it is. */
export function cronProblem(expression: string): string | undefined {
  try {
    new CronSchedule(expression);
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message.replace(/^CronPattern: /, '') : String(err);
  }
}
