/// <reference lib="dom" />
// The web console in a real Chromium, against a real daemon on loopback and a real SQLite file.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, expect, it, onTestFinished } from 'vitest';
import { listArchive } from '../src/db/archive.js';
import { listTokens } from '../src/db/tokens.js';
import { describeInBrowser, launchChromium, openBrowser, type Browser, type BrowserOptions } from './helpers/browser.js';
import { ALL_SECRETS, seedDays, seededConsole, type Seeded } from './helpers/console-seed.js';
import { freshDatabaseUrl } from './helpers/databases.js';
import { API_SECRET } from './helpers/http.js';
import { waitFor } from './helpers/wait.js';

const SHOTS = join(import.meta.dirname, '..', 'docs', 'console');
const shoot = process.env.TSCHK_SCREENSHOTS !== '0';

async function signIn(page: Page, base: string, secret = API_SECRET): Promise<void> {
  await page.goto(`${base}/`);
  await page.getByLabel('API secret').fill(secret);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

const cardCount = (page: Page, pool: string, what: string) =>
  page.locator(`[data-pool="${pool}"] [data-count="${what}"] strong`).first().textContent();

describeInBrowser('web console in Chromium', () => {
  let database: { url: string; drop: () => Promise<void> };
  let seeded: Seeded;
  let browser: Browser;
  let base: string;
  const browsers: Browser[] = [];
  let chromium: Awaited<ReturnType<typeof launchChromium>>;

  // Each test gets contexts of its own (no cookie or storage shared) in the file's one Chromium.
  const open = async (opts: BrowserOptions = {}) => {
    const b = await openBrowser(base, opts, chromium);
    browsers.push(b);
    return b;
  };

  beforeAll(async () => {
    if (shoot) mkdirSync(SHOTS, { recursive: true });
    chromium = await launchChromium();
  });
  afterAll(async () => {
    await chromium?.close();
  });

  beforeEach(async () => {
    database = await freshDatabaseUrl('sqlite');
    seeded = await seededConsole(database.url);
    base = seeded.s.base;
    browser = await open();
  });

  afterEach(async () => {
    for (const b of browsers.splice(0)) {
      await b.close();
      // No secret in any page or answer the browser got, nor in the daemon's log.
      for (const secret of ALL_SECRETS.slice(1)) for (const body of b.bodies) expect(body).not.toContain(secret);
      for (const body of b.bodies) expect(body).not.toContain(API_SECRET);
      expect(b.foreign).toEqual([]);
      expect(b.errors).toEqual([]);
    }
    for (const secret of ALL_SECRETS) expect(seeded.s.log.text).not.toContain(secret);
    await seeded.close();
    await database.drop();
  });

  it('refuses a wrong secret, signs in with the right one into an HttpOnly SameSite=Strict session, and signs out', async () => {
    const { page } = browser;
    await signIn(page, base, 'not-the-secret');
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('That is not the API secret.');
    expect(await page.getByRole('heading', { name: 'Token pools' }).count()).toBe(0);

    await page.getByLabel('API secret').fill(API_SECRET);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Token pools' }).waitFor();
    const [cookie] = await browser.context.cookies();
    expect(cookie).toMatchObject({ name: 'tschk_session', httpOnly: true, sameSite: 'Strict', secure: false });
    expect(await page.evaluate(() => document.cookie)).toBe('');

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API secret').waitFor();
    // The old cookie is worth nothing now, even sent again by hand.
    const after = await fetch(`${base}/console/api/overview`, { headers: { cookie: `tschk_session=${cookie!.value}` } });
    expect(after.status).toBe(401);
  });

  it('refuses a state change without the CSRF token, and the session cookie opens no /api/v1 route', async () => {
    const { page } = browser;
    await signIn(page, base);
    await page.getByRole('heading', { name: 'Token pools' }).waitFor();
    const answers = await page.evaluate(async () => {
      const noCsrf = await fetch('/console/api/runs', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
      const wrongCsrf = await fetch('/console/api/runs', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': 'guess' },
        body: '{}',
      });
      const api = await fetch('/api/v1/tokens');
      const apiPost = await fetch('/api/v1/runs', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
      return {
        noCsrf: [noCsrf.status, ((await noCsrf.json()) as { error: { code: string } }).error.code],
        wrongCsrf: wrongCsrf.status,
        api: api.status,
        apiPost: apiPost.status,
      };
    });
    expect(answers).toEqual({ noCsrf: [403, 'csrf_failed'], wrongCsrf: 403, api: 401, apiPost: 401 });
    const runs = await seeded.s.db.kysely.selectFrom('check_runs').select('id').execute();
    expect(runs).toHaveLength(2);
  });

  it('shows the seeded numbers on the overview, the pool, a token, the runs and the archive', async () => {
    const { page } = browser;
    await signIn(page, base);
    await page.locator('body[data-ready="overview"]').waitFor();
    expect(await cardCount(page, 'deep/default', 'live')).toBe('3');
    expect(await cardCount(page, 'deep/default', 'unknown')).toBe('1');
    expect(await cardCount(page, 'deep/default', 'unchecked')).toBe('1');
    expect(await cardCount(page, 'deep/default', 'active')).toBe('5');
    expect(await page.locator('[data-share="deep/default"]').textContent()).toBe('75%');
    expect(await cardCount(page, 'deep/free', 'live')).toBe('2');
    expect(await page.locator('.runs-line').textContent()).toContain('Last run #2');

    await page.getByRole('link', { name: /deep\s*\/\s*default/ }).click();
    await page.locator('body[data-ready="pool"]').waitFor();
    expect(await page.locator('[data-total]').textContent()).toBe('5 tokens match the filter');
    expect(await page.locator('tbody tr').count()).toBe(5);
    // Labels are text, never markup.
    expect(await page.getByRole('cell', { name: '<img src=x onerror=alert(1)>' }).count()).toBe(1);
    expect(await page.locator('tbody img, tbody b').count()).toBe(0);
    const html = page.locator('tbody tr', { hasText: 'http_502' });
    expect(await html.locator('.reason small').textContent()).toBe(
      'HTTP 502: another service (a proxy?) answered instead of the provider.',
    );

    await page.getByLabel('Verdict').selectOption('unknown');
    await page.locator('[data-total="1"]').waitFor();
    await html.getByRole('link').click();
    await page.locator('body[data-ready="token"]').waitFor();
    expect(await page.locator('table.checks tbody tr').count()).toBe(2);
    expect(await page.locator('table.checks tbody tr').first().textContent()).toContain('http_502');

    await page.getByRole('link', { name: 'Runs' }).click();
    await page.locator('body[data-ready="runs"]').waitFor();
    const run2 = page.locator('tr[data-run="2"]');
    expect(await run2.textContent()).toContain('done');
    await run2.getByRole('link').click();
    await page.locator('body[data-ready="run"]').waitFor();
    expect(await page.locator('[data-count="checked"] strong').textContent()).toBe('7');
    expect(await page.locator('[data-change="confirmed_dead"] h2').textContent()).toBe('Confirmed dead (1)');
    expect(await page.locator('[data-change="pruned"] h2').textContent()).toBe('Pruned (1)');

    await page.getByRole('link', { name: 'Archive' }).click();
    await page.locator('body[data-ready="archive"]').waitFor();
    expect(await page.locator('tbody tr').count()).toBe(1);
    expect(await page.locator('tbody tr').textContent()).toContain('pruned: confirmed dead');
  });

  it('checks a pool now from the pool page, shows the run in flight, and the table takes the new verdicts', async () => {
    const { page } = browser;
    // One check stays in flight until the other tab has seen the run's progress.
    let release!: () => void;
    seeded.mock.setBehaviour('sk-html-console-eeee-0005', { kind: 'held', until: new Promise<void>((r) => (release = r)), then: 'live' });
    // A test that fails before the release must not leave the check, and the daemon's stop, waiting.
    onTestFinished(() => release());
    await signIn(page, base);
    await page.locator('body[data-ready="overview"]').waitFor();
    await page.goto(`${base}/pools/deep/default`);
    await page.locator('body[data-ready="pool"]').waitFor();
    expect(await page.locator('tr', { hasText: 'http_502' }).count()).toBe(1);
    await page.getByRole('button', { name: 'Check this pool' }).click();
    await page.getByRole('link', { name: 'run #3' }).waitFor();

    // Meanwhile, in another tab, the overview shows the run in flight with its progress.
    const overview = await browser.context.newPage();
    await overview.goto(`${base}/`);
    const progress = overview.locator('.progress[data-run="3"]');
    await progress.waitFor();
    expect(await progress.textContent()).toMatch(/^Run #3 in flight: [0-4] of 5 checked$/);
    release();
    await progress.waitFor({ state: 'detached' });
    await overview.close();

    await expect.poll(() => page.locator('tbody .tag.verdict-live').count(), { timeout: 10_000 }).toBe(5);
    expect(await page.locator('tr', { hasText: 'http_502' }).count()).toBe(0);
    const run = await seeded.s.db.kysely.selectFrom('check_runs').selectAll().where('id', '=', 3).executeTakeFirstOrThrow();
    expect(run).toMatchObject({ trigger: 'console', scope: 'deep/default', status: 'done' });
  });

  it('restores a pruned token from the archive back into its pool, and its page tells why it was pruned', async () => {
    const { page } = browser;
    await signIn(page, base);
    await page.locator('body[data-ready="overview"]').waitFor();
    await page.goto(`${base}/archive`);
    await page.locator('body[data-ready="archive"]').waitFor();
    await page.locator('tbody tr').getByRole('link').click();
    await page.locator('body[data-ready="token"]').waitFor();
    const events = await page.locator('[data-event]').evaluateAll((els) => els.map((e) => e.getAttribute('data-event')));
    expect(events).toEqual(['suspect', 'pruned']);
    expect(await page.locator('[data-event="pruned"]').textContent()).toContain('run #2');
    expect(await page.locator('[data-event="pruned"]').textContent()).toContain('The free-api said the token is not live.');

    await page.getByRole('button', { name: 'Restore' }).click();
    await page.getByText('Restored into deep/default.').waitFor();
    const back = (await listTokens(seeded.s.db, { providerId: seeded.deep.id, pool: 'default' })).filter(
      (t) => t.secret === 'sk-dead-console-dddd-0004',
    );
    expect(back).toHaveLength(1);
    expect(back[0]!.state).toBe('active');
    expect((await listArchive(seeded.s.db, { unrestored: true })).length).toBe(0);
  });

  it('re-checks every token matching a filter in one run, over pages, and removes by filter', async () => {
    const { page } = browser;
    await signIn(page, base);
    await page.locator('body[data-ready="overview"]').waitFor();
    await page.goto(`${base}/pools/deep/default?verdict=live`);
    await page.locator('[data-total="3"]').waitFor();
    await page.getByRole('button', { name: 'Re-check all matching' }).click();
    await page.getByRole('button', { name: 'Re-check 3 tokens' }).click();
    await waitFor(
      async () => {
        const r = await seeded.s.db.kysely.selectFrom('check_runs').selectAll().where('id', '=', 3).executeTakeFirst();
        return r?.status === 'done';
      },
      10_000,
      'the bulk re-check run ends',
    );
    const run = await seeded.s.db.kysely.selectFrom('check_runs').selectAll().where('id', '=', 3).executeTakeFirstOrThrow();
    // The three live tokens of the pool, and nothing else of it.
    expect(Number(run.checked)).toBe(3);
    expect(run.scope).toBe('deep/default matching verdict=live maxId=3');
    const checkedTokens = await seeded.s.db.kysely.selectFrom('token_status').select('token_id').where('run_id', '=', 3).execute();
    expect(checkedTokens.map((r) => Number(r.token_id)).sort()).toEqual([1, 2, 3]);

    await page.goto(`${base}/pools/deep/default?verdict=unchecked`);
    await page.locator('[data-total="1"]').waitFor();
    await page.getByRole('button', { name: 'Remove all matching' }).click();
    await page.getByRole('button', { name: 'Remove 1 tokens' }).click();
    await page.getByText('1 removed; 0 still at their source (see the log).').waitFor();
    expect((await listTokens(seeded.s.db, { pool: 'default' })).map((t) => t.secret)).not.toContain('sk-late-console-hhhh-0008');
  });

  it('speaks Chinese to a Chinese browser, switches to English, and shows times in the browser’s time zone', async () => {
    const zh = await open({ locale: 'zh-CN', timezoneId: 'Asia/Shanghai' });
    const { page } = zh;
    await page.goto(`${base}/`);
    await page.getByLabel('API 密钥').fill(API_SECRET);
    await page.getByRole('button', { name: '登录' }).click();
    await page.getByRole('heading', { name: '令牌池' }).waitFor();
    expect(await page.locator('.tz').textContent()).toBe('Asia/Shanghai');
    const run = await seeded.s.db.kysely.selectFrom('check_runs').select('finished_at').where('id', '=', 2).executeTakeFirstOrThrow();
    const finished = seeded.s.db.dialect.readTime(run.finished_at)!;
    const shanghai = new Intl.DateTimeFormat('zh-CN', { dateStyle: 'medium', timeStyle: 'medium', timeZone: 'Asia/Shanghai' }).format(
      finished,
    );
    expect(await page.locator('.runs-line').textContent()).toContain(shanghai);

    await page.getByLabel('语言').selectOption('en');
    await page.getByRole('heading', { name: 'Token pools' }).waitFor();
    await page.reload();
    await page.getByRole('heading', { name: 'Token pools' }).waitFor();
  });

  it('is usable on a phone: nothing wider than the screen, every control labelled and reachable by keyboard', async () => {
    const phone = await open({ viewport: { width: 390, height: 844 } });
    const { page } = phone;
    await page.goto(`${base}/`);
    await page.getByLabel('API secret').waitFor();
    expect(await page.evaluate(() => document.activeElement?.getAttribute('name'))).toBe('secret');
    await page.keyboard.type(API_SECRET);
    await page.keyboard.press('Enter');
    await page.locator('body[data-ready="overview"]').waitFor();
    for (const path of ['/', '/pools/deep/default', '/runs', '/archive']) {
      await page.goto(`${base}${path}`);
      await page.locator('body[data-ready]').waitFor();
      expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
      const unnamed = await page.evaluate(() =>
        Array.from(document.querySelectorAll('button, input, select, textarea, a[href]'))
          .filter((el) => {
            const labelled =
              el.getAttribute('aria-label') || (el.id && document.querySelector(`label[for="${el.id}"]`)) || el.closest('label');
            return !labelled && !(el.textContent ?? '').trim();
          })
          .map((el) => el.outerHTML.slice(0, 80)),
      );
      expect(unnamed).toEqual([]);
    }
  });

  it('takes the screenshots the README shows (overview, a pool, a token; the overview in dark)', async () => {
    await seedDays(seeded.s.db, seeded.deep, 30);
    const { page } = browser;
    await signIn(page, base);
    await page.locator('body[data-trend="ready"]').waitFor();
    await expect.poll(() => page.locator('[data-pool="deep/default"] .chart .dot').count()).toBeGreaterThan(20);
    if (shoot) await page.screenshot({ path: join(SHOTS, 'overview.png'), fullPage: true });
    await page.goto(`${base}/pools/deep/default`);
    await page.locator('body[data-ready="pool"]').waitFor();
    if (shoot) await page.screenshot({ path: join(SHOTS, 'pool.png'), fullPage: true });
    await page.goto(`${base}/tokens/5`);
    await page.locator('body[data-ready="token"]').waitFor();
    if (shoot) await page.screenshot({ path: join(SHOTS, 'token.png'), fullPage: true });
    const dark = await open({ colorScheme: 'dark' });
    await signIn(dark.page, base);
    await dark.page.locator('body[data-trend="ready"]').waitFor();
    const background = await dark.page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    expect(background).toBe('rgb(15, 20, 25)');
    if (shoot) await dark.page.screenshot({ path: join(SHOTS, 'overview-dark.png'), fullPage: true });
  });
});
