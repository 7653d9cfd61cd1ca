import { Writable } from 'node:stream';
import { loadConfig, type Config } from '../../src/config.js';
import { Daemon, type DaemonOptions } from '../../src/daemon.js';
import { createLogger } from '../../src/logger.js';
import { ManualClock } from './clock.js';

/** Everything a test's logger wrote, to assert on (and to scan for secrets). */
export class CapturedLog {
  lines: string[] = [];
  readonly stream = new Writable({
    write: (chunk, _enc, done) => {
      this.lines.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  get text(): string {
    return this.lines.join('\n');
  }
  entries(): Array<Record<string, unknown>> {
    return this.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  }
}

/** A config as the daemon would read it, with test-friendly defaults (no retry waits). */
export function testConfig(databaseUrl: string, env: Record<string, string> = {}): Readonly<Config> {
  return loadConfig({
    TSCHK_DATABASE_URL: databaseUrl,
    TSCHK_RETRY_BASE_MS: '5',
    TSCHK_RUN_ON_START: 'false',
    TSCHK_HTTP_PORT: '0',
    TSCHK_HTTP_HOST: '127.0.0.1',
    LOG_LEVEL: 'debug',
    ...env,
  });
}

export async function testDaemon(databaseUrl: string, env: Record<string, string> = {}, opts: Omit<DaemonOptions, 'logger'> = {}) {
  const log = new CapturedLog();
  const config = testConfig(databaseUrl, env);
  // The schedule stands still unless a test brings a clock: a test that ran at the top of the hour
  // had the default hourly cron check its seeded tokens again.
  const scheduleClock = opts.scheduleClock ?? new ManualClock(Date.now());
  const daemon = await Daemon.create(config, { ...opts, scheduleClock, logger: createLogger(config.logLevel, log.stream) });
  // Tests look at the pools at once; the daemon itself does not wait for the start-up sync.
  await daemon.sourcesSynced;
  return { daemon, log, config, db: daemon.context.db };
}
