import type { Config } from '../config.js';
import { createLogger } from '../logger.js';
import type { CliIo } from './common.js';

export function logger(config: Readonly<Config>, io: CliIo, command: string) {
  // One-shot commands print their own result; their logs stay quiet unless LOG_LEVEL asks.
  const level = command === 'serve' || io.env.LOG_LEVEL !== undefined ? config.logLevel : 'warn';
  return createLogger(level, io.logDestination ?? (command === 'serve' ? undefined : { write: (s: string) => io.stderr.write(s) }));
}
