// The console's HTTP side on every dialect: sign-in, sessions, CSRF, headers, and the numbers its
// JSON gives for a seeded database, over real HTTP on loopback.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pickLanguage, CONTENT_SECURITY_POLICY } from '../src/console/routes.js';
import { SignInThrottle } from '../src/console/session.js';
import { importTokens, listTokens } from '../src/db/tokens.js';
import { en } from '../web/messages-en.js';
import { zhCN } from '../web/messages-zh-cn.js';
import { ALL_SECRETS, POOL, seedDays, seededConsole, type Seeded } from './helpers/console-seed.js';
import { describeEachDialect, freshDatabaseUrl } from './helpers/databases.js';
import { API_SECRET, servedDaemon } from './helpers/http.js';

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

/** A browser-like client of the console: keeps the session cookie and sends the CSRF token. */
function consoleClient(base: string) {
  let cookie = '';
  let csrf = '';
  const answers: Answer[] = [];
  const call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> => {
    const res = await fetch(base + path, {
      method,
      headers: {
        ...(cookie ? { cookie } : {}),
        ...(csrf && method !== 'GET' ? { 'x-csrf-token': csrf } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let json: any;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    const a = { status: res.status, headers: res.headers, text, json };
    answers.push(a);
    return a;
  };
  return {
    answers,
    call,
    async signIn(secret = API_SECRET, headers: Record<string, string> = {}) {
      const a = await call('POST', '/console/api/session', { secret }, headers);
      const set = a.headers.get('set-cookie');
      if (a.status === 200 && set) {
        cookie = set.split(';')[0]!;
        csrf = a.json.csrf;
      }
      return a;
    },
    forgetCsrf() {
      csrf = '';
    },
    get cookie() {
      return cookie;
    },
  };
}

describe('pickLanguage', () => {
  it.each([
    [undefined, 'en'],
    ['', 'en'],
    ['zh-CN,zh;q=0.9,en;q=0.8', 'zh-CN'],
    ['zh-TW', 'zh-CN'],
    ['en-US,en;q=0.9,zh-CN;q=0.8', 'en'],
    ['en;q=0.5, zh;q=0.9', 'zh-CN'],
    ['fr-FR, de', 'en'],
    ['zh;q=0, en', 'en'],
  ])('%s → %s', (header, lang) => {
    expect(pickLanguage(header)).toBe(lang);
  });
});

describe('SignInThrottle', () => {
  it('lets 3 failures through, then makes each further attempt wait twice as long, per client, and forgets after 15 minutes', () => {
    let now = 0;
    const t = new SignInThrottle(undefined, () => now);
    for (let i = 0; i < 3; i++) {
      expect(t.waitMs('a')).toBe(0);
      t.failed('a');
    }
    expect(t.waitMs('a')).toBe(1_000);
    expect(t.waitMs('b')).toBe(0);
    now += 1_000;
    expect(t.waitMs('a')).toBe(0);
    t.failed('a');
    expect(t.waitMs('a')).toBe(2_000);
    now += 2_000;
    t.failed('a');
    expect(t.waitMs('a')).toBe(4_000);
    now += 16 * 60_000;
    expect(t.waitMs('a')).toBe(0);
    t.failed('a');
    expect(t.waitMs('a')).toBe(0);
  });

  it('forgets a client after a success', () => {
    const t = new SignInThrottle(undefined, () => 0);
    for (let i = 0; i < 5; i++) t.failed('a');
    t.succeeded('a');
    expect(t.waitMs('a')).toBe(0);
  });
});

describe('the message catalogs', () => {
  /** Kept the same in Chinese on purpose: protocol names. */
  const SAME = new Set<string>([]);

  it('zh-CN has every English key and no other', () => {
    expect(Object.keys(zhCN).sort()).toEqual(Object.keys(en).sort());
  });

  it('zh-CN leaves no message in English', () => {
    const untranslated = Object.entries(zhCN).filter(
      ([k, v]) => !SAME.has(k) && (v === en[k as keyof typeof en] || !/[\u4e00-\u9fff]/.test(v)),
    );
    expect(untranslated).toEqual([]);
  });

  it('every placeholder of a message is kept in its translation', () => {
    const holes = (s: string) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
    const broken = Object.keys(en).filter(
      (k) => JSON.stringify(holes(en[k as keyof typeof en])) !== JSON.stringify(holes(zhCN[k as keyof typeof en])),
    );
    expect(broken).toEqual([]);
  });
});

describe('the console without an API secret', () => {
  it('says how to set one, and answers nothing else', async () => {
    const database = await freshDatabaseUrl('sqlite');
    const s = await servedDaemon(database.url, { UserAuthorization: '' });
    try {
      const c = consoleClient(s.base);
      const session = await c.call('GET', '/console/api/session');
      expect(session.json).toMatchObject({ configured: false, signed_in: false, variables: 'UserAuthorization or TSCHK_API_TOKEN' });
      expect((await c.call('GET', '/console/api/overview')).status).toBe(503);
      expect((await c.signIn('anything')).status).toBe(503);
      const page = await c.call('GET', '/');
      expect(page.status).toBe(200);
      expect(page.headers.get('content-security-policy')).toBe(CONTENT_SECURITY_POLICY);
    } finally {
      await s.daemon.stop();
      await database.drop();
    }
  });
});

describeEachDialect('web console over HTTP', (dialect) => {
  let database: { url: string; drop: () => Promise<void> };
  let seeded: Seeded;
  let c: ReturnType<typeof consoleClient>;

  beforeEach(async () => {
    database = await freshDatabaseUrl(dialect);
    seeded = await seededConsole(database.url);
    c = consoleClient(seeded.s.base);
  });
  afterEach(async () => {
    for (const secret of ALL_SECRETS) {
      for (const a of c.answers) expect(a.text).not.toContain(secret);
      expect(seeded.s.log.text).not.toContain(secret);
    }
    await seeded.close();
    await database.drop();
  });

  it('serves its page and files with a strict CSP, no inline script, no framing', async () => {
    const page = await c.call('GET', '/pools/deep/default');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-security-policy')).toBe(
      "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    );
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    expect([...page.text.matchAll(/<script\b[^>]*>/g)].map((m) => m[0])).toEqual(['<script type="module" src="/assets/app.js">']);
    expect(page.text).not.toMatch(/<style|\sstyle=|\son\w+=/i);
    const app = await c.call('GET', '/assets/app.js');
    expect(app.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(app.headers.get('content-security-policy')).toBe(page.headers.get('content-security-policy'));
    const again = await c.call('GET', '/assets/app.js', undefined, { 'if-none-match': app.headers.get('etag')! });
    expect(again.status).toBe(304);
    expect((await c.call('GET', '/assets/..%2Fpackage.json')).status).toBe(404);
    expect((await c.call('GET', '/assets/nope.js')).status).toBe(404);
  });

  it('keeps the assets under 150 KB gzipped and fetches nothing from elsewhere', async () => {
    const { gzipSync } = await import('node:zlib');
    const { assets } = await import('../src/console/assets.js');
    const all = [...assets().values()];
    const gz = gzipSync(Buffer.from(all.map((a) => a.body).join(''))).length;
    expect(gz).toBeLessThan(150 * 1024);
    for (const a of all) expect(a.body).not.toMatch(/https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
  });

  it('answers nothing before sign-in, and slows down wrong secrets: even the right one waits its turn', async () => {
    expect((await c.call('GET', '/console/api/overview')).status).toBe(401);
    for (let i = 0; i < 3; i++) expect((await c.signIn('wrong')).json.error.code).toBe('wrong_secret');
    const slowed = await c.signIn(API_SECRET);
    expect(slowed.status).toBe(429);
    expect(slowed.json.error.code).toBe('too_many_attempts');
    expect(slowed.headers.get('retry-after')).toBe('1');
    expect(slowed.headers.get('set-cookie')).toBeNull();
    expect(seeded.s.log.entries().filter((e) => e.msg === 'console sign-in refused: wrong secret')).toHaveLength(3);
  });

  it('signs in into a session kept as a keyed hash, which expires and ends at sign-out', async () => {
    const signedIn = await c.signIn();
    expect(signedIn.headers.get('set-cookie')).toMatch(
      /^tschk_session=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=43200; HttpOnly; SameSite=Strict$/,
    );
    expect((await c.call('GET', '/console/api/overview')).status).toBe(200);
    const rows = await seeded.s.db.kysely.selectFrom('console_sessions').selectAll().execute();
    expect(rows).toHaveLength(1);
    expect(rows[0]!.id).toMatch(/^[0-9a-f]{64}$/);
    expect(rows[0]!.id).not.toContain(c.cookie.split('=')[1]);
    await seeded.s.db.kysely
      .updateTable('console_sessions')
      .set({ expires_at: seeded.s.db.dialect.time(new Date(Date.now() - 1000)) })
      .execute();
    const expired = await c.call('GET', '/console/api/overview');
    expect(expired.status).toBe(401);
    expect(expired.json.error.code).toBe('signed_out');

    await c.signIn();
    const out = await c.call('DELETE', '/console/api/session');
    expect(out.headers.get('set-cookie')).toMatch(/^tschk_session=; Path=\/; Max-Age=0;/);
    expect((await c.call('GET', '/console/api/overview')).status).toBe(401);
    // The expired session went with the next sign-in; the ended one at sign-out.
    expect(await seeded.s.db.kysely.selectFrom('console_sessions').selectAll().execute()).toEqual([]);
  });

  it('refuses changes without the CSRF token or from another origin, and /api/v1 ignores the session', async () => {
    await c.signIn();
    expect((await c.call('POST', '/console/api/runs', {}, { origin: 'http://evil.example' })).json.error.code).toBe('cross_site');
    expect((await c.call('POST', '/console/api/runs', {}, { 'sec-fetch-site': 'cross-site' })).status).toBe(403);
    expect((await c.call('GET', '/api/v1/tokens')).status).toBe(401);
    c.forgetCsrf();
    const noCsrf = await c.call('POST', '/console/api/runs', {});
    expect(noCsrf.status).toBe(403);
    expect(noCsrf.json.error.code).toBe('csrf_failed');
    expect((await c.call('DELETE', '/console/api/tokens/1')).status).toBe(403);
    expect((await listTokens(seeded.s.db, { providerId: seeded.deep.id })).length).toBe(7);
    const signInElsewhere = consoleClient(seeded.s.base);
    expect((await signInElsewhere.signIn(API_SECRET, { origin: 'http://evil.example' })).status).toBe(403);
  });

  it('gives the overview, the trend, a pool page, a token, a run and the archive their numbers', async () => {
    await c.signIn();
    const o = (await c.call('GET', '/console/api/overview')).json;
    expect(
      o.pools.map((p: any) => [
        p.provider,
        p.pool,
        p.tokens,
        p.states.active,
        p.verdicts.live,
        p.verdicts.unknown,
        p.verdicts.unchecked,
        p.live_share,
      ]),
    ).toEqual([
      ['deep', 'default', 5, 5, 3, 1, 1, 0.75],
      ['deep', 'free', 2, 2, 2, 0, 0, 1],
    ]);
    expect(o.last_run).toMatchObject({ id: 2, status: 'done', checked: 7, pruned: 1 });
    expect(o.running).toBeNull();
    expect(Date.parse(o.next_run_at)).toBeGreaterThan(Date.now());
    expect(o.warnings).toEqual([]);

    const page = (await c.call('GET', '/console/api/pools/deep/default/tokens?verdict=live&sort=label&dir=desc')).json;
    expect(page.total).toBe(3);
    expect(page.tokens.map((t: any) => t.label)).toEqual(['team <b>alpha</b>', '<img src=x onerror=alert(1)>', null]);
    expect(page.tokens[0].checks.map((k: any) => k.verdict)).toEqual(['live', 'live']);
    expect(page.tokens[0]).not.toHaveProperty('secret');
    const like = (await c.call('GET', `/console/api/pools/deep/default/tokens?q=${encodeURIComponent('ALPHA')}`)).json;
    expect(like.total).toBe(1);
    expect((await c.call('GET', `/console/api/pools/deep/default/tokens?q=${encodeURIComponent('%')}`)).json.total).toBe(0);
    expect((await c.call('GET', '/console/api/pools/deep/default/tokens?state=nope')).status).toBe(400);
    const byReason = (await c.call('GET', '/console/api/pools/deep/default/tokens?reason=http_502')).json;
    expect(byReason.tokens.map((t: any) => t.last_http_status)).toEqual([502]);
    expect(byReason.reasons[0]).toEqual({ reason: 'upstream_accepted', tokens: 3 });

    const run = (await c.call('GET', '/console/api/runs/2')).json;
    expect(run.changes.confirmed_dead.tokens.map((t: any) => t.fingerprint)).toHaveLength(1);
    expect(run.changes.pruned.count).toBe(1);
    expect(run.changes.became_suspect.count).toBe(0);
    expect((await c.call('GET', '/console/api/runs/1')).json.changes.became_suspect.count).toBe(1);
    expect(run.providers).toEqual([expect.objectContaining({ provider: 'deep', checked: 7, dead: 1, pruned: 1, held_reason: null })]);

    const archive = (await c.call('GET', '/console/api/archive')).json;
    expect(archive.entries).toEqual([
      expect.objectContaining({ provider: 'deep', pool: 'default', reason: 'pruned', last_reason: 'upstream_rejected', restored_at: null }),
    ]);
    const token = (await c.call('GET', `/console/api/tokens/${archive.entries[0].token_id}`)).json;
    expect(token.token).toBeNull();
    expect(token.events.map((e: any) => [e.kind, e.run_id, e.reason, e.actor])).toEqual([
      ['suspect', 1, 'upstream_rejected', 'run'],
      ['pruned', 2, 'upstream_rejected', 'run'],
    ]);
    const restored = await c.call('POST', `/console/api/archive/${archive.entries[0].id}/restore`);
    expect(restored.json.restored).toMatchObject({ provider: 'deep', pool: 'default', into: 'tokens' });
    const restoredEvents = await seeded.s.db.kysely
      .selectFrom('token_events')
      .select(['event', 'actor'])
      .where('event', '=', 'restored')
      .execute();
    expect(restoredEvents).toEqual([{ event: 'restored', actor: 'console' }]);
    expect((await c.call('POST', `/console/api/archive/${archive.entries[0].id}/restore`)).status).toBe(409);

    await seedDays(seeded.s.db, seeded.deep, 30);
    const trend = (await c.call('GET', '/console/api/trend?days=30')).json;
    const days = trend.series['deep/default'];
    expect(days).toHaveLength(30);
    // The pool's six tokens (the restored one too): 14 days ago, in the dip, half answered unknown.
    const share = (daysAgo: number) => days[29 - daysAgo];
    expect(share(14)).toMatchObject({ checks: 6, live: 3, share: 0.5 });
    expect(share(20)).toMatchObject({ checks: 6, live: 6, share: 1 });
    expect(trend.series['deep/free'][29 - 20]).toMatchObject({ checks: 2, live: 1, share: 0.5 });

    // A canary is counted on its pool's card, apart from the tokens it guards.
    await importTokens(seeded.s.db, {
      providerId: seeded.deep.id,
      pool: 'free',
      entries: ['canary-token-1234567'],
      source: 'api',
      expect: 'live',
    });
    const cards = (await c.call('GET', '/console/api/overview')).json.pools.map((p: any) => [p.pool, p.tokens, p.canaries]);
    expect(cards).toEqual([
      ['default', 6, 0],
      ['free', 3, 1],
    ]);
  });

  it('shows a held pruning, the tokens it would take, and prunes them when asked with the hold it showed', async () => {
    await c.signIn();
    // An outage: every token of the pool answers dead twice.
    seeded.mock.setDefault('dead');
    for (const secret of Object.keys(POOL)) seeded.mock.setBehaviour(secret, 'dead');
    seeded.mock.setBehaviour('sk-late-console-hhhh-0008', 'dead');
    await seeded.s.daemon.runNow({ trigger: 'cli', force: true });
    await seeded.s.daemon.runNow({ trigger: 'cli', force: true });
    const o = (await c.call('GET', '/console/api/overview')).json;
    const held = o.warnings.find((w: any) => w.kind === 'held');
    expect(held).toMatchObject({ provider: 'deep', run_id: 4 });
    expect(held.reason).toContain('TSCHK_PRUNE_MAX_RATIO');
    const preview = (await c.call('GET', '/console/api/providers/deep/held')).json;
    expect(preview.count).toBe(7);
    expect(preview.tokens).toHaveLength(7);
    expect((await c.call('POST', '/console/api/providers/deep/prune', { run_id: 3 })).json.error.code).toBe('hold_changed');
    const started = await c.call('POST', '/console/api/providers/deep/prune', { run_id: 4 });
    expect(started.status).toBe(202);
    await seeded.s.daemon.context.runs.idle();
    const run = await seeded.s.db.kysely
      .selectFrom('check_runs')
      .selectAll()
      .where('id', '=', started.json.run_id)
      .executeTakeFirstOrThrow();
    expect(run).toMatchObject({ trigger: 'console', status: 'done' });
    expect(Number(run.pruned)).toBe(7);
  });

  it('imports from text with the rules of tokens import, and removes one token through its source', async () => {
    await c.signIn();
    const imported = await c.call('POST', '/console/api/tokens', {
      provider: 'deep',
      pool: 'new',
      text: '\ufeffsk-new-console-1\r\nsk-new-console-2,sk-new-console-3\n\nsk-new-console-1\n',
      label: 'x',
    });
    expect(imported.json).toEqual({ provider: 'deep', pool: 'new', added: 3, duplicates: 1 });
    const rows = await listTokens(seeded.s.db, { providerId: seeded.deep.id, pool: 'new' });
    expect(rows.map((r) => [r.source, r.label])).toEqual([
      ['console', 'x'],
      ['console', 'x'],
      ['console', 'x'],
    ]);
    expect((await c.call('POST', '/console/api/tokens', { provider: 'deep', pool: 'bad pool', text: 'a' })).status).toBe(400);
    expect((await c.call('POST', '/console/api/tokens', { provider: 'nope', text: 'a' })).status).toBe(404);
    const removed = await c.call('DELETE', `/console/api/tokens/${rows[0]!.id}`);
    expect(removed.json.archived).toMatchObject({ id: rows[0]!.id, fingerprint: rows[0]!.fingerprint });
    // The event log says who removed it.
    const events = await seeded.s.db.kysely
      .selectFrom('token_events')
      .select(['event', 'reason', 'actor'])
      .where('token_id', '=', rows[0]!.id)
      .execute();
    expect(events).toEqual([{ event: 'removed', reason: 'user_removed', actor: 'console' }]);
    for (const a of c.answers)
      for (const s of ['sk-new-console-1', 'sk-new-console-2', 'sk-new-console-3']) expect(a.text).not.toContain(s);
  });

  it('removes and re-checks every token matching a filter at 10,000+ tokens, a page of ids at a time', async () => {
    await c.signIn();
    const many = Array.from({ length: 10_300 }, (_, i) => `sk-bulk-console-${String(i).padStart(6, '0')}`);
    await importTokens(seeded.s.db, { providerId: seeded.deep.id, pool: 'big', entries: many, source: 'cli' });
    await importTokens(seeded.s.db, { providerId: seeded.deep.id, pool: 'big', entries: ['sk-bulk-keep-1'], source: 'cli', label: 'keep' });
    const count = (await c.call('GET', '/console/api/pools/deep/big/match?verdict=unchecked')).json;
    expect(count.count).toBe(10_301);
    // Imported after the count: left alone by the action confirmed on that count.
    await importTokens(seeded.s.db, { providerId: seeded.deep.id, pool: 'big', entries: ['sk-bulk-late-1'], source: 'cli' });
    const changed = await c.call('POST', '/console/api/pools/deep/big/bulk', {
      action: 'remove',
      filter: { verdict: 'unchecked' },
      max_id: count.max_id,
      expected: 10_000,
    });
    expect(changed.json.error.code).toBe('selection_changed');

    const recheck = await c.call('POST', '/console/api/pools/deep/big/bulk', {
      action: 'recheck',
      filter: { q: 'keep' },
      max_id: count.max_id,
      expected: 1,
    });
    expect(recheck.status).toBe(202);
    await seeded.s.daemon.context.runs.idle();
    const checked = await seeded.s.db.kysely
      .selectFrom('token_status')
      .select('token_id')
      .where('run_id', '=', recheck.json.run_id)
      .execute();
    expect(checked).toHaveLength(1);

    const removed = await c.call('POST', '/console/api/pools/deep/big/bulk', {
      action: 'remove',
      filter: { verdict: 'unchecked' },
      max_id: count.max_id,
      expected: 10_300,
    });
    expect(removed.json).toEqual({ removed: 10_300, kept: 0 });
    expect((await listTokens(seeded.s.db, { providerId: seeded.deep.id, pool: 'big' })).map((t) => t.secret).sort()).toEqual([
      'sk-bulk-keep-1',
      'sk-bulk-late-1',
    ]);
    const archived = await seeded.s.db.kysely
      .selectFrom('token_archive')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('pool', '=', 'big')
      .executeTakeFirstOrThrow();
    expect(Number(archived.n)).toBe(10_300);
    for (const a of c.answers) expect(a.text).not.toContain('sk-bulk-');
  }, 120_000);

  it('marks the cookie Secure only behind a trusted proxy that says HTTPS', async () => {
    const plain = await c.signIn(API_SECRET, { 'x-forwarded-proto': 'https' });
    expect(plain.headers.get('set-cookie')).not.toContain('Secure');
    await seeded.close();
    seeded = await seededConsole(database.url, { TSCHK_TRUST_PROXY: 'true' });
    c = consoleClient(seeded.s.base);
    const behind = await c.signIn(API_SECRET, { 'x-forwarded-proto': 'https', origin: `https://${new URL(seeded.s.base).host}` });
    expect(behind.status).toBe(200);
    expect(behind.headers.get('set-cookie')).toMatch(/; Secure$/);
  });
});
