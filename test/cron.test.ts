import cron from 'node-cron';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { CronSchedule } from '../src/cron.js';

// tschk 0.1.0 read TSCHK_CRON with node-cron (kept as a dev dependency for this comparison): an
// expression a user wrote then must fire at the same times now.
const EXPRESSIONS = [
  '0 * * * *',
  '17 3 * * *',
  '*/5 * * * *',
  '* * * * * *',
  '*/10 * * * * *',
  '0 30 8-18/2 * * *',
  '1-30/7 * * * *',
  '0 */6 * * *',
  '30 2 * * *',
  '0 0 1 * *',
  '0 12 1,15 * *',
  '0 0 29 2 *',
  '0 0 1 jan *',
  '0 9 * * 1-5',
  '0 9 * * mon-fri',
  '0 0 * * 0',
  '0 0 * * 7',
  '0 0 * * SUN',
  '0 0 13 * 5',
  '0 0 L * *',
  '0 0 * * 5#2',
  '0 0 * * 5L',
  '0 0 15W * *',
  '@daily',
  '@hourly',
];
const ZONES = [undefined, 'UTC', 'Asia/Shanghai', 'America/New_York'];
// Across a change of daylight saving time in New York.
const FROM = new Date('2026-03-06T12:34:56.789Z');

function nodeCronRuns(expression: string, timezone: string | undefined, n: number): string[] {
  const task = cron.createTask(expression, () => {}, { timezone });
  try {
    let at = FROM;
    const out: string[] = [];
    const matcher = (task as unknown as { timeMatcher?: { getNextMatch(d: Date): Date } }).timeMatcher;
    if (!matcher) throw new Error('node-cron changed: no timeMatcher to compare with');
    for (let i = 0; i < n; i++) out.push((at = matcher.getNextMatch(at)).toISOString());
    return out;
  } finally {
    void task.destroy();
  }
}

function ourRuns(expression: string, timezone: string | undefined, n: number): string[] {
  const schedule = new CronSchedule(expression, timezone);
  let at = FROM;
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push((at = schedule.next(at)!).toISOString());
  return out;
}

describe('cron expressions', () => {
  it.each(EXPRESSIONS.flatMap((e) => ZONES.map((z) => [e, z] as const)))('%s in %s fires when tschk 0.1.0 fired it', (expression, zone) => {
    const ours = ourRuns(expression, zone, 8);
    const before = nodeCronRuns(expression, zone, 8);
    if (expression === '30 2 * * *' && zone === 'America/New_York') {
      // 02:30 does not exist on 8 March in New York: 0.1.0 skipped that day's run, it now comes at 03:00.
      expect(ours.filter((t) => t !== '2026-03-08T07:00:00.000Z')).toEqual(before.slice(0, 7));
    } else {
      expect(ours).toEqual(before);
    }
  });

  it("refuses at start-up what it cannot read as 0.1.0 did ('L-3', the third last day), and says why in one line", () => {
    expect(cron.validate('0 0 L-3 * *')).toBe(true);
    expect(() => loadConfig({ TSCHK_CRON: '0 0 L-3 * *' })).toThrow(
      /^TSCHK_CRON: expected a cron expression such as '0 \* \* \* \*', got '0 0 L-3 \* \*' \(.*L.*\)$/,
    );
    expect(() => loadConfig({ TSCHK_TRIM_CRON: '61 3 * * *' })).toThrow(/^TSCHK_TRIM_CRON: .*got '61 3 \* \* \*' \(.*minute.*\)$/);
  });
});
