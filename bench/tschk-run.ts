// The measured process: a real Daemon doing one forced run, and nothing else. Its CPU time and
// RSS are what the bench reports; seeding and the upstream live in other processes.
import pino from 'pino';
import { loadConfig } from '../src/config.js';
import { Daemon } from '../src/daemon.js';
import { limitHeapGrowth } from '../src/heap.js';
import { createLogger } from '../src/logger.js';

export interface RunMeasurement {
  status: string;
  checked: number;
  live: number;
  durationMs: number;
  cpuUs: number;
  sampledPeakRssBytes: number;
  maxRssKb: number;
}

const RSS_SAMPLE_MS = 50;

// The environment is handed over explicitly: a user's TSCHK_* or TokenStatuCheckUrls__* variables
// must not leak into the bench (they could point the run at a real host).
const env = JSON.parse(process.argv[2] ?? '{}') as Record<string, string>;
// The heap is tuned as `tschk` tunes it at start-up.
limitHeapGrowth(process.execArgv);
const config = loadConfig(env);
// Logs are produced at the daemon's level and thrown away: their cost is part of the measurement.
const logger = createLogger(config.logLevel, pino.destination({ dest: '/dev/null', sync: false }));
const daemon = await Daemon.create(config, { logger });

let sampledPeakRssBytes = process.memoryUsage.rss();
const sampler = setInterval(() => {
  sampledPeakRssBytes = Math.max(sampledPeakRssBytes, process.memoryUsage.rss());
}, RSS_SAMPLE_MS);

const cpuBefore = process.cpuUsage();
const began = performance.now();
const summary = await daemon.runNow({ trigger: 'cli', force: true });
const durationMs = performance.now() - began;
const cpu = process.cpuUsage(cpuBefore);
clearInterval(sampler);
sampledPeakRssBytes = Math.max(sampledPeakRssBytes, process.memoryUsage.rss());
await daemon.stop();

const measurement: RunMeasurement = {
  status: summary.status,
  checked: summary.checked,
  live: summary.live,
  durationMs,
  cpuUs: cpu.user + cpu.system,
  sampledPeakRssBytes,
  maxRssKb: process.resourceUsage().maxRSS,
};
process.send?.(measurement, () => process.disconnect());
