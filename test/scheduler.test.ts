import { afterEach, expect, it, vi } from 'vitest';
import { createLogger } from '../src/logger.js';
import { Scheduler } from '../src/scheduler.js';
import { CapturedLog } from './helpers/daemon.js';

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

it('logs one JSON line per tick skipped while the job still runs, and nothing on the console', async () => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
  vi.setSystemTime(new Date('2026-12-02T10:00:00.500Z'));
  const console = [vi.spyOn(globalThis.console, 'warn'), vi.spyOn(globalThis.console, 'info'), vi.spyOn(globalThis.console, 'error')];
  const log = new CapturedLog();
  const ticks: Date[] = [];
  let release: () => void = () => {};
  const scheduler = new Scheduler(
    [{ name: 'check', cron: '* * * * * *', run: (tick) => (ticks.push(tick), new Promise<void>((r) => (release = r))) }],
    undefined,
    createLogger('info', log.stream),
  );
  scheduler.start();
  await vi.advanceTimersByTimeAsync(3_000);
  release();
  await vi.advanceTimersByTimeAsync(1_000);
  scheduler.stop();

  expect(ticks.map((t) => t.toISOString())).toEqual(['2026-12-02T10:00:01.000Z', '2026-12-02T10:00:04.000Z']);
  const skipped = log.entries().filter((e) => e.msg === 'tick skipped: the previous one is still running');
  expect(skipped.map((e) => e.tick)).toEqual(['2026-12-02T10:00:02.000Z', '2026-12-02T10:00:03.000Z']);
  expect(skipped.every((e) => e.job === 'check' && e.level === 'warn')).toBe(true);
  for (const spy of console) expect(spy).not.toHaveBeenCalled();
});

it('hands a job the time the schedule matched, not the time its timer fired, so every replica names the same tick', async () => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
  vi.setSystemTime(new Date('2026-12-02T10:00:00.500Z'));
  const ticks: Date[] = [];
  const scheduler = new Scheduler(
    [{ name: 'check', cron: '* * * * * *', run: async (tick) => void ticks.push(tick) }],
    undefined,
    createLogger('silent'),
  );
  scheduler.start();
  // The wall clock moves 300 ms ahead of the timers: the first one fires when it reads 10:00:01.300.
  vi.setSystemTime(new Date('2026-12-02T10:00:00.800Z'));
  await vi.advanceTimersByTimeAsync(500);
  scheduler.stop();
  expect(ticks.map((t) => t.toISOString())).toEqual(['2026-12-02T10:00:01.000Z']);
});
