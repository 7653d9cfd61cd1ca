#!/usr/bin/env node
import { runCli } from './cli.js';
import { stopWatchdogMs } from './config.js';
import { limitHeapGrowth } from './heap.js';

// The only place that touches process.env, signals and the exit code.
limitHeapGrowth(process.execArgv);
const watchdogMs = stopWatchdogMs(process.env);
let signals = 0;
const shutdownRequested = new Promise<void>((resolve) => {
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals === 1) {
      resolve();
      // Watchdog: should a stop hang, do not hang forever; unref'd so a clean stop exits at once.
      setTimeout(() => {
        process.stderr.write(`tschk: the stop did not finish within ${watchdogMs} ms, exiting\n`);
        process.exit(1);
      }, watchdogMs).unref();
    } else {
      process.stderr.write(`tschk: second ${signal}, exiting now\n`);
      process.exit(130);
    }
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
});

process.exitCode = await runCli(process.argv.slice(2), {
  env: process.env,
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  shutdownRequested,
});
