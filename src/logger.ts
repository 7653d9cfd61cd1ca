import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

/**
 * Secrets are never handed to the logger on purpose (callers log `mask`/`fingerprint`);
 * these paths are the net under that rule, for a field that slips through.
 */
const REDACT = [
  'secret',
  '*.secret',
  'token',
  '*.token',
  'tokens',
  '*.tokens',
  'password',
  '*.password',
  'key',
  '*.key',
  'authorization',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'apiToken',
  '*.apiToken',
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      name: 'tschk',
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT, censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}
