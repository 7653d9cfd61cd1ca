import { get, post, del, setCsrf, whenSignedOut } from './api.js';
import { clear, h, link, navigate } from './dom.js';
import { initLanguage, language, LANGUAGES, setLanguage, t, timeZone, type Language } from './i18n.js';
import { archivePage } from './page-archive.js';
import { overviewPage } from './page-overview.js';
import { poolPage } from './page-pool.js';
import { runPage, runsPage } from './page-runs.js';
import { tokenPage } from './page-token.js';
import { errorText, labelled, notice } from './widgets.js';

/** What a page gets: where to draw, and a way to stop its timers when the page changes. */
export interface PageContext {
  root: HTMLElement;
  params: Record<string, string>;
  query: URLSearchParams;
  /** Called when the user leaves the page. */
  onLeave: (f: () => void) => void;
  /** Asks for the page to be drawn again (after an action). */
  refresh: () => void;
}

type Page = (ctx: PageContext) => Promise<void> | void;

const ROUTES: Array<[RegExp, Page, string[]]> = [
  [/^\/$/, overviewPage, []],
  [/^\/pools\/([^/]+)\/([^/]+)$/, poolPage, ['provider', 'pool']],
  [/^\/tokens\/(\d+)$/, tokenPage, ['id']],
  [/^\/runs$/, runsPage, []],
  [/^\/runs\/(\d+)$/, runPage, ['id']],
  [/^\/archive$/, archivePage, []],
];

interface SessionAnswer {
  configured: boolean;
  signed_in: boolean;
  lang: Language;
  csrf?: string;
  variables?: string;
}

const app = document.getElementById('app')!;
const leaving: Array<() => void> = [];
let session: SessionAnswer | undefined;

async function start(): Promise<void> {
  initLanguage();
  whenSignedOut(() => {
    session = undefined;
    void draw();
  });
  document.addEventListener('click', (e) => {
    const a = (e.target as Element | null)?.closest?.('a[data-internal]');
    if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey) return;
    e.preventDefault();
    navigate((a as HTMLAnchorElement).getAttribute('href')!);
  });
  window.addEventListener('popstate', () => void draw());
  await draw();
}

async function draw(): Promise<void> {
  for (const f of leaving.splice(0)) f();
  if (!session?.signed_in) {
    try {
      session = await get<SessionAnswer>('/session');
    } catch (err) {
      clear(app, notice('error', errorText(err)));
      return;
    }
  }
  setCsrf(session.csrf);
  if (!session.configured) return drawUnconfigured(session.variables ?? 'UserAuthorization');
  if (!session.signed_in) return drawSignIn();
  const path = location.pathname;
  const match = ROUTES.map(([re, page, names]) => ({ m: re.exec(path), page, names })).find((r) => r.m);
  const main = h('div', { class: 'page' });
  clear(app, header(), main);
  if (!match) {
    main.append(h('h1', {}, t('page.not_found')), link('/', {}, t('nav.overview')));
    return;
  }
  const params = Object.fromEntries(match.names.map((n, i) => [n, decodeURIComponent(match.m![i + 1]!)]));
  const ctx: PageContext = {
    root: main,
    params,
    query: new URLSearchParams(location.search),
    onLeave: (f) => leaving.push(f),
    refresh: () => void draw(),
  };
  try {
    await match.page(ctx);
  } catch (err) {
    main.append(notice('error', errorText(err)));
  }
}

function languagePicker(): HTMLElement {
  const select = h(
    'select',
    {
      onchange: (e: Event) => {
        setLanguage((e.target as HTMLSelectElement).value as Language);
        void draw();
      },
    },
    ...LANGUAGES.map((l) => h('option', { value: l.code, selected: l.code === language() }, l.name)),
  );
  return labelled(t('nav.language'), select);
}

function header(): HTMLElement {
  const here = location.pathname;
  const nav = (href: string, label: string, active: boolean) => link(href, { 'aria-current': active ? 'page' : null }, label);
  return h(
    'header',
    { class: 'top' },
    h('a', { href: '/', 'data-internal': true, class: 'brand' }, 'tschk'),
    h(
      'nav',
      { 'aria-label': t('nav.label') },
      nav('/', t('nav.overview'), here === '/' || here.startsWith('/pools') || here.startsWith('/tokens')),
      nav('/runs', t('nav.runs'), here.startsWith('/runs')),
      nav('/archive', t('nav.archive'), here === '/archive'),
    ),
    h(
      'div',
      { class: 'tools' },
      languagePicker(),
      h('span', { class: 'tz', title: t('nav.time_zone') }, timeZone()),
      h(
        'button',
        {
          type: 'button',
          class: 'secondary',
          onclick: async () => {
            try {
              await del('/session');
            } finally {
              session = undefined;
              await draw();
            }
          },
        },
        t('action.sign_out'),
      ),
    ),
  );
}

function drawUnconfigured(variables: string): void {
  clear(
    app,
    h(
      'section',
      { class: 'sign-in' },
      h('h1', {}, t('setup.title')),
      h('p', {}, t('setup.body', { variables })),
      h('pre', {}, 'UserAuthorization=<a long random secret>'),
      h('p', {}, t('setup.restart')),
      languagePicker(),
    ),
  );
}

function drawSignIn(): void {
  const input = h('input', { type: 'password', name: 'secret', autocomplete: 'current-password', required: true });
  const message = h('div', { 'aria-live': 'polite' });
  const button = h('button', { type: 'submit' }, t('action.sign_in'));
  const form = h(
    'form',
    {
      class: 'sign-in',
      onsubmit: async (e: Event) => {
        e.preventDefault();
        button.disabled = true;
        clear(message);
        try {
          const r = await post<{ csrf: string }>('/session', { secret: input.value });
          session = { configured: true, signed_in: true, lang: language(), csrf: r.csrf };
          input.value = '';
          await draw();
        } catch (err) {
          clear(message, notice('error', errorText(err)));
          input.select();
        } finally {
          button.disabled = false;
        }
      },
    },
    h('h1', {}, t('signin.title')),
    h('p', {}, t('signin.body')),
    labelled(t('signin.secret'), input),
    button,
    message,
    languagePicker(),
  );
  clear(app, form);
  input.focus();
}

void start();
