import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const loader = fileURLToPath(new URL('./ts-loader.mjs', import.meta.url));

export interface SpawnResult {
  code: number | null;
  /** Set when the process had to be killed: it did not end by itself before `killAfterMs`. */
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface SpawnOptions {
  /** SIGKILL after this long: a process that spins ignores SIGTERM. */
  killAfterMs?: number;
  uid?: number;
  gid?: number;
}

/**
 * Runs `tschk ARGS` as a real process (src/main.ts, no build), with only PATH and the given
 * environment: for what an in-process run cannot show (a hang, a signal, another uid).
 */
export function spawnTschk(args: string[], env: Record<string, string>, opts: SpawnOptions = {}): Promise<SpawnResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', loader, `${root}src/main.ts`, ...args], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      uid: opts.uid,
      gid: opts.gid,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += String(c)));
    child.stderr.on('data', (c) => (stderr += String(c)));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.killAfterMs ?? 20_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}
