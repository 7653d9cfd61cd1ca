// First paint of the console's overview with 10,000 tokens: `npm run bench` (after the run bench),
// or alone `node dist/bench/console-paint.js [--tokens N] [--days D]`. Seeds a fresh SQLite file
// with N tokens and D days of one check a day each, starts a real daemon, and loads the overview
// in the system's Chromium: the time from navigation to the cards drawn with their numbers.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config.js';
import { Daemon } from '../src/daemon.js';
import { appendHistory } from '../src/db/history.js';
import { upsertProvider } from '../src/db/providers.js';
import { importTokens, listTokens } from '../src/db/tokens.js';
import { createLogger } from '../src/logger.js';

const CHROMIUM = process.env.TSCHK_TEST_CHROMIUM ?? '/usr/bin/chromium';
const TARGET_MS = 300;
const SECRET = 'bench-console-secret';

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { tokens: { type: 'string' }, days: { type: 'string' }, loads: { type: 'string' } } });
  const n = Number(values.tokens ?? 10_000);
  const days = Number(values.days ?? 30);
  const loads = Number(values.loads ?? 7);
  if (!existsSync(CHROMIUM)) {
    console.log(JSON.stringify({ case: 'console-first-paint', skipped: `no Chromium at ${CHROMIUM}` }));
    return 0;
  }
  const { chromium } = await import('playwright-core');
  const dir = mkdtempSync(join(tmpdir(), 'tschk-bench-console-'));
  const config = loadConfig({
    TSCHK_DATABASE_URL: `sqlite:${join(dir, 'tschk.db')}`,
    TSCHK_HTTP_HOST: '127.0.0.1',
    TSCHK_HTTP_PORT: '0',
    TSCHK_RUN_ON_START: 'false',
    UserAuthorization: SECRET,
    LOG_LEVEL: 'warn',
  });
  const daemon = await Daemon.create(config, { logger: createLogger('warn') });
  const { db } = daemon.context;
  const seedStart = Date.now();
  const p = await upsertProvider(db, { name: 'deep', kind: 'free-api', checkUrl: 'http://127.0.0.1:9/token/check' });
  await importTokens(db, {
    providerId: p.id,
    pool: 'default',
    entries: Array.from({ length: n }, (_, i) => `sk-bench-${i}-${'x'.repeat(24)}`),
    source: 'cli',
  });
  const tokens = await listTokens(db, { providerId: p.id });
  const now = Date.now();
  for (let d = days; d >= 0; d--) {
    const at = new Date(now - d * 86_400_000 - 60_000);
    for (let i = 0; i < tokens.length; i += 2000) {
      await appendHistory(
        db,
        tokens.slice(i, i + 2000).map((t, j) => {
          const verdict = (i + j + d) % 10 === 0 ? 'dead' : (i + j) % 17 === 0 ? 'unknown' : 'live';
          return {
            run_id: null,
            token_id: t.id,
            provider_id: p.id,
            fingerprint: t.fingerprint,
            checked_at: at,
            verdict,
            reason: verdict === 'live' ? 'upstream_accepted' : verdict === 'dead' ? 'upstream_rejected' : 'timeout',
            http_status: 200,
            latency_ms: 100 + ((i + j) % 700),
            balance: null,
            currency: null,
            detail: null,
          };
        }),
      );
    }
  }
  await db.kysely
    .updateTable('tokens')
    .set({ last_verdict: 'live', last_reason: 'upstream_accepted', last_checked_at: db.dialect.time(new Date(now - 60_000)) })
    .execute();
  const seedS = (Date.now() - seedStart) / 1000;
  await daemon.start();
  const base = daemon.httpAddress!.url;
  const profile = mkdtempSync(join(tmpdir(), 'tschk-bench-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    await page.goto(`${base}/`);
    await page.getByLabel('API secret').fill(SECRET);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('body[data-ready="overview"]').waitFor();
    const paints: number[] = [];
    const trends: number[] = [];
    for (let i = 0; i < loads; i++) {
      await page.goto(`${base}/`);
      await page.locator('body[data-ready="overview"]').waitFor();
      await page.locator('body[data-trend="ready"]').waitFor({ timeout: 120_000 });
      const m = await page.evaluate(() => ({
        ready: performance.getEntriesByName('tschk:overview-ready')[0]?.startTime ?? -1,
        trend: performance.getEntriesByName('tschk:trend-ready')[0]?.startTime ?? -1,
      }));
      paints.push(m.ready);
      trends.push(m.trend);
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
    const firstPaintMs = Math.round(median(paints));
    const line = {
      case: 'console-first-paint',
      tokens: n,
      historyRows: tokens.length * (days + 1),
      seedS: Math.round(seedS * 10) / 10,
      loads,
      firstPaintMs,
      firstPaintMaxMs: Math.round(Math.max(...paints)),
      trendReadyMs: Math.round(median(trends)),
      node: process.version,
      targets: { firstPaintMs: { target: `<= ${TARGET_MS}`, met: firstPaintMs <= TARGET_MS } },
      met: firstPaintMs <= TARGET_MS,
    };
    console.log(JSON.stringify(line));
    return line.met ? 0 : 1;
  } finally {
    await context.close();
    await daemon.stop();
    rmSync(profile, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(2);
  },
);
