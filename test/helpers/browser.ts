import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser as Chromium, type BrowserContext, type Page } from 'playwright-core';
import { describe } from 'vitest';
import { CHROMIUM, haveChromium } from './chromium.js';

export { CHROMIUM, haveChromium };

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Runs the suite in a real browser when Chromium is installed; says it skipped it otherwise. */
export function describeInBrowser(name: string, fn: () => void): void {
  if (haveChromium()) describe(name, fn);
  else describe.skip(`${name} (SKIPPED: no Chromium at ${CHROMIUM}; apt-get install chromium)`, fn);
}

export interface Browser {
  context: BrowserContext;
  page: Page;
  /** The body of every answer the browser got from tschk, for the secret scan. */
  bodies: string[];
  /** Requests the browser made to anywhere but tschk (none may happen: no CDN, no network). */
  foreign: string[];
  /** Errors the page reported (uncaught exceptions, console errors such as CSP violations). */
  errors: string[];
  close(): Promise<void>;
}

export type BrowserOptions = {
  locale?: string;
  timezoneId?: string;
  colorScheme?: 'light' | 'dark';
  viewport?: { width: number; height: number };
};

/**
 * One Chromium process for many tests: starting one costs a second or more on a busy machine,
 * while a context in it starts in milliseconds and shares no cookie, storage or cache with another.
 */
export function launchChromium(): Promise<Chromium> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
}

/**
 * A browser window on the console at base: a context of its own in `chromium` when given (see
 * launchChromium), else a Chromium of its own with a fresh profile.
 */
export async function openBrowser(base: string, opts: BrowserOptions = {}, chromiumProcess?: Chromium): Promise<Browser> {
  const settings = {
    locale: opts.locale ?? 'en-US',
    timezoneId: opts.timezoneId ?? 'UTC',
    colorScheme: opts.colorScheme ?? 'light',
    viewport: opts.viewport ?? { width: 1280, height: 900 },
    extraHTTPHeaders: opts.locale ? { 'Accept-Language': opts.locale } : undefined,
  } as const;
  const profile = chromiumProcess ? undefined : mkdtempSync(join(tmpdir(), 'tschk-chromium-'));
  const context = profile
    ? await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: ARGS, ...settings })
    : await chromiumProcess!.newContext(settings);
  const bodies: string[] = [];
  const foreign: string[] = [];
  const errors: string[] = [];
  const pending: Array<Promise<void>> = [];
  context.on('request', (r) => {
    if (!r.url().startsWith(base) && !r.url().startsWith('data:') && !r.url().startsWith('about:')) foreign.push(r.url());
  });
  context.on('response', (r) => {
    if (!r.url().startsWith(base)) return;
    pending.push(
      r.body().then(
        (b) => void bodies.push(`${r.url()}\n${JSON.stringify(r.headers())}\n${b.toString('utf8')}`),
        () => {},
      ),
    );
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const watch = (p: Page) => {
    p.on('pageerror', (e) => errors.push(e.message));
    p.on('console', (m) => {
      // An answer of 401/403 the test asked for is logged by Chromium too; it is not a page error.
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text());
    });
  };
  watch(page);
  context.on('page', watch);
  return {
    context,
    page,
    bodies,
    foreign,
    errors,
    async close() {
      // A body Chromium never hands over (a refused request whose connection closed) must not hang the test.
      await Promise.race([Promise.all(pending), new Promise((r) => setTimeout(r, 2_000))]);
      await context.close();
      if (profile) rmSync(profile, { recursive: true, force: true });
    },
  };
}
