import type { Readable, Writable } from 'node:stream';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { DestinationStream } from 'pino';
import type { Config } from '../config.js';

export interface CliIo {
  env: Record<string, string | undefined>;
  stdout: Writable;
  stderr: Writable;
  stdin: Readable;
  /** Where logs go; defaults to stdout for `serve`, stderr for every other command. */
  logDestination?: DestinationStream;
  /** Resolves when the process is asked to stop (first SIGTERM/SIGINT). */
  shutdownRequested: Promise<void>;
}

/** One command: its arguments after the command word, the configuration, the process's streams. */
export type Command = (config: Readonly<Config>, rest: string[], io: CliIo) => Promise<number>;

/**
 * Exit codes: 0 done; 1 the work failed (a run failed or was aborted, the database is unreachable);
 * 2 bad usage or configuration; 3 `check --no-wait` met a run in flight that does not cover it.
 */
export const EXIT = { ok: 0, failed: 1, usage: 2, busy: 3 } as const;

export class UsageError extends Error {}

export function isParseArgsError(err: unknown): boolean {
  return err instanceof TypeError && /^ERR_PARSE_ARGS_/.test(String((err as { code?: unknown }).code));
}

export function print(io: CliIo, text: string): number {
  io.stdout.write(text.endsWith('\n') ? text : text + '\n');
  return EXIT.ok;
}

export function args<T extends NonNullable<ParseArgsConfig['options']>>(rest: string[], options: T, positionals = 0) {
  const parsed = parseArgs({ args: rest, options, allowPositionals: true, strict: true });
  if (parsed.positionals.length > positionals) {
    throw new UsageError(`unexpected argument '${parsed.positionals[positionals]}'`);
  }
  return parsed;
}

/** `max` is the width of the column the value goes to. */
export function maxLength(option: string, value: string | undefined, max: number): void {
  if (value !== undefined && [...value].length > max)
    throw new UsageError(`${option} must be at most ${max} characters; got ${[...value].length}`);
}
