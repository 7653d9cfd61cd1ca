import { PassThrough, Readable } from 'node:stream';
import { runCli } from '../../src/cli.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `tschk ARGS` in-process with the given environment and standard input. */
export async function tschk(args: string[], env: Record<string, string | undefined>, stdin = ''): Promise<CliResult> {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  let stderr = '';
  out.on('data', (c) => (stdout += String(c)));
  err.on('data', (c) => (stderr += String(c)));
  const code = await runCli(args, {
    env: { TSCHK_RETRY_BASE_MS: '5', ...env },
    stdout: out,
    stderr: err,
    stdin: Readable.from([stdin]),
    shutdownRequested: new Promise(() => {}),
  });
  return { code, stdout, stderr };
}
