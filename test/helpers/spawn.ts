import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { onTestFinished } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));
const loader = fileURLToPath(new URL('./ts-loader.mjs', import.meta.url));

/** Set by test/global-setup.ts: the folder with this run's sources as JavaScript (test/helpers/transpiled.ts). */
export const TRANSPILED_ENV = 'TSCHK_TEST_TRANSPILED';

/** node's arguments to run tschk: the run's transpiled sources (test/helpers/transpiled.ts), or the sources through the loader. */
function tschkArgs(args: string[]): string[] {
  const transpiled = process.env[TRANSPILED_ENV];
  if (transpiled && existsSync(`${transpiled}/src/main.js`)) return [`${transpiled}/src/main.js`, ...args];
  return ['--import', loader, `${root}src/main.ts`, ...args];
}

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
    const child = spawn(process.execPath, tschkArgs(args), {
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

/** A long-lived `tschk` process (serve, check) whose JSON log lines the test reads as they come. */
export interface TschkProcess {
  pid: number;
  /** Parsed JSON log lines on stdout, in order. */
  logs: Array<Record<string, unknown>>;
  stderr: () => string;
  /** Resolves with the first log line (seen so far or to come) that matches. */
  waitForLog(match: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): void;
}

/** Processes startTschk started that have not exited: none outlives its test, nor the worker. */
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export function startTschk(args: string[], env: Record<string, string>): TschkProcess {
  const child = spawn(process.execPath, tschkArgs(args), {
    cwd: root,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  child.on('exit', () => running.delete(child));
  // Also when the test failed or timed out on an await that never came back.
  onTestFinished(() => {
    if (running.has(child)) child.kill('SIGKILL');
  });
  const logs: Array<Record<string, unknown>> = [];
  const waiters: Array<{ match: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }> = [];
  let pending = '';
  let stderr = '';
  child.stdout.on('data', (c) => {
    pending += String(c);
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const text of lines.filter(Boolean)) {
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(text) as Record<string, unknown>;
      } catch {
        line = { msg: text, notJson: true };
      }
      logs.push(line);
      for (const w of waiters.splice(0)) {
        if (w.match(line)) w.resolve(line);
        else waiters.push(w);
      }
    }
  });
  child.stderr.on('data', (c) => (stderr += String(c)));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })),
  );
  return {
    pid: child.pid!,
    logs,
    stderr: () => stderr,
    waitForLog(match, timeoutMs = 20_000) {
      const seen = logs.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no matching log line within ${timeoutMs} ms; stderr: ${stderr.slice(-500)}`)),
          timeoutMs,
        );
        waiters.push({
          match,
          resolve: (l) => {
            clearTimeout(timer);
            resolve(l);
          },
        });
      });
    },
    exited,
    kill: (signal = 'SIGTERM') => void child.kill(signal),
  };
}
