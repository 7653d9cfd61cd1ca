// Starts throwaway PostgreSQL and MariaDB servers for one test run. Workers learn their URLs from
// the env vars TSCHK_TEST_PG_URL / TSCHK_TEST_MYSQL_URL (vitest builds the forks' env from
// process.env after global setup has run) and from inject('tschkDatabaseUrls').
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import type { TestProject } from 'vitest/node';
import { buildConsole } from '../web/build.mjs';
import { CHROMIUM, haveChromium } from './helpers/chromium.js';
import { createTemplate, testRun } from './helpers/databases.js';
import { transpileSourcesInTurns, TRANSPILED_ENV } from './helpers/transpiled.js';
import { MissingBinary, startMariadb, startPostgres, type TestServer } from './helpers/db-servers.js';

declare module 'vitest' {
  export interface ProvidedContext {
    tschkDatabaseUrls: { postgres?: string; mysql?: string };
  }
}

type Server = 'postgres' | 'mysql';
const ENV: Record<Server, string> = { postgres: 'TSCHK_TEST_PG_URL', mysql: 'TSCHK_TEST_MYSQL_URL' };

interface Running {
  url: string;
  stop(): Promise<void>;
  /** Last resort on process exit: synchronous, no waiting. */
  kill(): void;
}

const asRunning = (s: TestServer): Running => ({ url: s.url, stop: () => s.destroy(), kill: () => s.kill() });

function requestedServers(): Server[] {
  const raw = process.env.TSCHK_TEST_DIALECTS;
  if (!raw || raw.trim().toLowerCase() === 'all') return ['postgres', 'mysql'];
  const aliases: Record<string, Server | 'sqlite'> = {
    sqlite: 'sqlite',
    postgres: 'postgres',
    pg: 'postgres',
    postgresql: 'postgres',
    mysql: 'mysql',
    mariadb: 'mysql',
  };
  const names = raw.split(',').map((s) => s.trim().toLowerCase());
  const unknown = names.filter((n) => !(n in aliases));
  if (unknown.length > 0) throw new Error(`TSCHK_TEST_DIALECTS: unknown ${unknown.join(', ')} (sqlite, postgres, mysql or all)`);
  return (['postgres', 'mysql'] as const).filter((server) => names.some((n) => aliases[n] === server));
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const started = Date.now();
  // Names this run's databases (test/helpers/databases.ts): its templates, and what each worker copies.
  process.env.TSCHK_TEST_RUN = randomBytes(3).toString('hex');
  const wanted = requestedServers();
  const requireAll = process.env.TSCHK_TEST_REQUIRE_DIALECTS === 'all';
  const running: Running[] = [];
  const dropTemplates: Array<() => Promise<void>> = [];
  const stopAll = async () => {
    process.off('exit', killAll);
    // On a server given from outside, only this run's databases go (those kept for a failed test stay).
    await Promise.allSettled(dropTemplates.splice(0).map((drop) => drop()));
    await Promise.all(running.splice(0).map((r) => r.stop()));
    rmSync(testRun().keptList, { force: true });
    transpiled?.remove();
  };
  let transpiled: { remove: () => void } | undefined;
  const killAll = () => running.forEach((r) => r.kill());
  process.on('exit', killAll);

  const urls: { postgres?: string; mysql?: string } = {};
  const skipped: string[] = [];
  const reused: string[] = [];
  const starters: Record<Server, () => Promise<Running>> = {
    postgres: async () => asRunning(await startPostgres()),
    mysql: async () => asRunning(await startMariadb()),
  };
  // The servers start first: their own processes do most of that work while this one builds below.
  const starting = Promise.allSettled(
    (['postgres', 'mysql'] as const).map(async (server) => {
      if (!wanted.includes(server)) {
        delete process.env[ENV[server]];
        return;
      }
      // A server given from outside (e.g. a developer's own) is used instead of starting one.
      const given = process.env[ENV[server]];
      if (given) {
        urls[server] = given;
        reused.push(`${server} from ${ENV[server]}`);
        dropTemplates.push(await createTemplate(server));
        return;
      }
      try {
        const r = await starters[server]();
        running.push(r);
        urls[server] = r.url;
        process.env[ENV[server]] = r.url;
        dropTemplates.push(await createTemplate(server));
      } catch (e) {
        if (!(e instanceof MissingBinary)) throw e;
        skipped.push(`${server === 'mysql' ? 'mariadb' : server} (${e.message})`);
      }
    }),
  );
  try {
    // The console's browser files, fresh for every run: its pages and tests load them from dist/web.
    buildConsole();
    const js = await transpileSourcesInTurns();
    transpiled = js;
    process.env[TRANSPILED_ENV] = js.dir;
  } catch (e) {
    await starting;
    await stopAll();
    throw e;
  }
  const results = await starting;
  // CI sets TSCHK_TEST_REQUIRE_BROWSER=1: the console's browser tests must run there, never skip.
  const noBrowser = !haveChromium();
  if (noBrowser && process.env.TSCHK_TEST_REQUIRE_BROWSER === '1') {
    await stopAll();
    throw new Error(`TSCHK_TEST_REQUIRE_BROWSER=1 but there is no Chromium at ${CHROMIUM} (apt-get install chromium)`);
  }
  const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failure || (requireAll && skipped.length > 0)) {
    await stopAll();
    throw failure ? failure.reason : new Error(`TSCHK_TEST_REQUIRE_DIALECTS=all but missing: ${skipped.join(', ')}`);
  }

  project.provide('tschkDatabaseUrls', urls);
  const on = ['sqlite', ...(['postgres', 'mysql'] as const).filter((s) => urls[s])].join(', ');
  console.log(
    `tschk tests: dialects ${on} (setup ${((Date.now() - started) / 1000).toFixed(1)} s)${reused.length ? `; ${reused.join(', ')}` : ''}`,
  );
  if (skipped.length) console.log(`tschk tests: SKIPPED dialects: ${skipped.join(', ')}`);
  console.log(
    noBrowser ? `tschk tests: SKIPPED the console's browser tests: no Chromium at ${CHROMIUM}` : `tschk tests: browser ${CHROMIUM}`,
  );
  return stopAll;
}
