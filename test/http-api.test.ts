import { afterEach, beforeEach, expect, it } from 'vitest';
import { findProvider, type Provider } from '../src/db/providers.js';
import { importTokens, listTokens } from '../src/db/tokens.js';
import { apiRoutes } from '../src/http/api.js';
import { healthRoutes } from '../src/http/health.js';
import { legacyRoutes } from '../src/http/legacy.js';
import { metricsRoutes } from '../src/metrics.js';
import { describeEachDialect, freshDatabaseUrl } from './helpers/databases.js';
import { API_SECRET, servedDaemon, type Served } from './helpers/http.js';
import { startMockFreeApi, type MockFreeApi } from './helpers/mock-free-api.js';

const SECRETS = {
  'sk-live-token-aaaaaaaa-0001': 'live',
  'sk-dead-token-bbbbbbbb-0002': 'dead',
  'sk-live-token-cccccccc-0003': 'live',
  'sk-html-token-dddddddd-0004': 'html_502',
  'sk-live-token-eeeeeeee-0005': 'live',
} as const;

describeEachDialect('/api/v1', (dialect) => {
  let mock: MockFreeApi;
  let database: { url: string; drop: () => Promise<void> };
  let s: Served;
  let deep: Provider;
  const known = new Set<string>([API_SECRET, ...Object.keys(SECRETS)]);

  beforeEach(async () => {
    mock = await startMockFreeApi();
    for (const [t, b] of Object.entries(SECRETS)) mock.setBehaviour(t, b);
    database = await freshDatabaseUrl(dialect);
    s = await servedDaemon(database.url, { TokenStatuCheckUrls__DeepTokenCheckUrl: mock.checkUrl, TSCHK_RETRIES: '0' });
    deep = (await findProvider(s.db, 'deep'))!;
    await importTokens(s.db, { providerId: deep.id, pool: 'default', entries: Object.keys(SECRETS), source: 'cli' });
  });
  afterEach(async () => {
    for (const secret of known) {
      for (const a of s.answers) expect(a.text).not.toContain(secret);
      expect(s.log.text).not.toContain(secret);
    }
    await s.daemon.stop();
    await mock.close();
    await database.drop();
  });

  it('lists providers with the latest summary of each pool', async () => {
    await s.daemon.runNow({ trigger: 'cli' });

    const a = await s.call('GET', '/api/v1/providers');

    expect(a.status).toBe(200);
    const [p] = a.json().providers;
    expect(p).toMatchObject({
      name: 'deep',
      kind: 'free-api',
      check_url: mock.checkUrl,
      enabled: true,
      declared_by: 'TokenStatuCheckUrls__DeepTokenCheckUrl',
      pools: [
        {
          pool: 'default',
          tokens: 5,
          states: { active: 4, suspect: 1, invalid: 0, disabled: 0 },
          verdicts: { live: 3, dead: 1, exhausted: 0, unknown: 1, unchecked: 0 },
        },
      ],
    });
    expect(Date.parse(p.pools[0].last_checked_at)).toBeGreaterThan(Date.now() - 60_000);
  });

  it('adds, updates and removes a provider; refuses one declared in the environment', async () => {
    const body = { name: 'my-qwen', kind: 'free-api', url: `${mock.baseUrl}/token/check` };
    const created = await s.call('POST', '/api/v1/providers', { body });
    expect(created.status).toBe(201);
    expect(created.json().provider).toMatchObject({ name: 'my-qwen', kind: 'free-api', declared_by: null });
    expect((await s.call('POST', '/api/v1/providers', { body: { ...body, concurrency: 2 } })).status).toBe(200);
    expect((await findProvider(s.db, 'my-qwen'))?.concurrency).toBe(2);

    await s.call('POST', '/api/v1/tokens', { body: { provider: 'my-qwen', tokens: ['sk-live-token-aaaaaaaa-0001'] } });
    const removed = await s.call('DELETE', '/api/v1/providers/my-qwen');
    expect(removed.json()).toEqual({ removed: 'my-qwen', archived_tokens: 1 });
    expect(await findProvider(s.db, 'my-qwen')).toBeUndefined();
    const archived = await s.db.kysely.selectFrom('token_archive').select(['provider_name', 'reason']).execute();
    expect(archived).toEqual([{ provider_name: 'my-qwen', reason: 'provider_removed' }]);
    const events = await s.db.kysely.selectFrom('token_events').select(['event', 'reason', 'actor']).execute();
    expect(events).toEqual([{ event: 'removed', reason: 'provider_removed', actor: 'api' }]);

    expect((await s.call('DELETE', '/api/v1/providers/my-qwen')).status).toBe(404);
    const declared = await s.call('DELETE', '/api/v1/providers/deep');
    expect(declared.status).toBe(409);
    expect(declared.json().error.message).toContain('TokenStatuCheckUrls__DeepTokenCheckUrl');
  });

  // Body validation reads no table (but for the provider's name): once, on SQLite, not per dialect.
  if (dialect === 'sqlite') {
    it.each([
      { body: { kind: 'free-api', url: 'http://x/token/check' }, says: 'name is required' },
      { body: { name: 'bad name!', kind: 'free-api' }, says: 'name must be letters, digits' },
      { body: { name: 'p', kind: 'nope' }, says: 'kind must be one of' },
      { body: { name: 'p', kind: 'free-api' }, says: 'url is required for kind free-api' },
      { body: { name: 'p', kind: 'free-api', url: 'ftp://x' }, says: 'url must be an http(s) URL' },
      { body: { name: 'p', kind: 'free-api', url: 'http://x', concurrency: 0 }, says: 'concurrency must be a whole number' },
      { body: { name: 'p', kind: 'free-api', url: 'http://x', colour: 'red' }, says: "unknown field 'colour'" },
      { body: { name: 'p', kind: 'free-api', url: `http://x/${'a'.repeat(1020)}` }, says: 'url must be at most 1024 characters' },
      { body: '[1,2]', says: 'the body must be a JSON object' },
      { body: '{"name":', says: 'the body is not valid JSON' },
    ])('refuses a provider body: $says', async ({ body, says }) => {
      const a = await s.call('POST', '/api/v1/providers', { body });
      expect(a.status).toBe(400);
      expect(a.json().error.message).toContain(says);
    });
  }

  it('imports tokens with the rules of tschk tokens import, canaries included', async () => {
    const a = await s.call('POST', '/api/v1/tokens', {
      body: { provider: 'deep', pool: 'free', tokens: ['sk-new-token-ffff-0006,sk-new-token-gggg-0007', ' sk-new-token-ffff-0006 ', ''] },
    });
    expect(a.status).toBe(200);
    expect(a.json()).toEqual({ provider: 'deep', pool: 'free', added: 2, duplicates: 1 });

    const canary = await s.call('POST', '/api/v1/tokens', {
      body: { provider: 'deep', tokens: ['sk-canary-hhhh-0008'], expect: 'live', label: 'canary' },
    });
    expect(canary.json()).toEqual({ provider: 'deep', pool: 'default', added: 1, duplicates: 0 });
    const rows = await listTokens(s.db, { providerId: deep.id });
    expect(rows.filter((t) => t.pool === 'free').map((t) => [t.position, t.source])).toEqual([
      [1, 'api'],
      [2, 'api'],
    ]);
    expect(rows.find((t) => t.label === 'canary')).toMatchObject({ expect: 'live', position: 6 });
    for (const t of ['sk-new-token-ffff-0006', 'sk-new-token-gggg-0007', 'sk-canary-hhhh-0008']) known.add(t);
  });

  // Body validation reads no table (but for the provider's name): once, on SQLite, not per dialect.
  if (dialect === 'sqlite') {
    it.each([
      { body: { tokens: ['t'] }, status: 400, says: 'provider is required' },
      { body: { provider: 'nope', tokens: ['t'] }, status: 400, says: "unknown provider 'nope'" },
      { body: { provider: 'deep', tokens: 't' }, status: 400, says: 'tokens must be an array of strings' },
      { body: { provider: 'deep', tokens: [1] }, status: 400, says: 'tokens must be an array of strings' },
      { body: { provider: 'deep', tokens: [' ', ','] }, status: 400, says: 'tokens holds no token' },
      {
        body: { provider: 'deep', tokens: ['sk-ok-token', 'sk-tab\tinside'] },
        status: 400,
        says: 'tokens[1] cannot be a token: it holds a control character',
      },
      {
        body: { provider: 'deep', tokens: ['sk-esc\u001b[31m'] },
        status: 400,
        says: 'tokens[0] cannot be a token: it holds a control character',
      },
      { body: { provider: 'deep', tokens: ['t'], expect: 'maybe' }, status: 400, says: 'expect must be live or dead' },
      { body: { provider: 'deep', pool: '../x', tokens: ['t'] }, status: 400, says: 'pool must be letters, digits' },
      { body: { provider: 'deep', tokens: ['t'], label: 'L'.repeat(256) }, status: 400, says: 'label must be at most 255 characters' },
      { body: '', status: 400, says: 'expected a JSON body' },
    ])('refuses a tokens body: $says', async ({ body, status, says }) => {
      const a = await s.call('POST', '/api/v1/tokens', { body });
      expect(a.status).toBe(status);
      expect(a.json().error.message).toContain(says);
    });
  }

  it('pages through tokens with a cursor, showing masks and fingerprints only', async () => {
    const seen: number[] = [];
    let cursor: string | null = '';
    let pages = 0;
    while (cursor !== null) {
      const a = await s.call('GET', `/api/v1/tokens?provider=deep&limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(a.status).toBe(200);
      const page = a.json();
      expect(page.tokens.length).toBeLessThanOrEqual(2);
      seen.push(...page.tokens.map((t: { id: number }) => t.id));
      cursor = page.next_cursor;
      pages++;
    }
    expect(pages).toBe(3);
    const ids = (await listTokens(s.db, {})).map((t) => Number(t.id));
    expect(seen).toEqual(ids);

    const first = (await s.call('GET', '/api/v1/tokens?limit=1')).json().tokens[0];
    expect(first).toMatchObject({ provider: 'deep', pool: 'default', position: 1, mask: 'sk-l…0001', state: 'active', last_verdict: null });
    expect(first.fingerprint).toMatch(/^[0-9a-f]{12}$/);
    expect(Object.keys(first)).not.toContain('secret');
  });

  it('filters tokens by state and pool, and refuses bad query parameters', async () => {
    await s.daemon.runNow({ trigger: 'cli' });
    const suspects = (await s.call('GET', '/api/v1/tokens?state=suspect')).json().tokens;
    expect(suspects.map((t: { mask: string }) => t.mask)).toEqual(['sk-d…0002']);
    expect((await s.call('GET', '/api/v1/tokens?pool=free')).json()).toEqual({ tokens: [], next_cursor: null });

    for (const [query, says] of [
      ['state=gone', 'state must be one of active, suspect, invalid, disabled'],
      ['limit=0', 'limit must be a whole number from 1 to 1000'],
      ['limit=abc', 'limit must be a whole number'],
      ['cursor=xyz', 'cursor must be a next_cursor value'],
      ['provider=nope', "unknown provider 'nope'"],
    ]) {
      const a = await s.call('GET', `/api/v1/tokens?${query}`);
      expect(a.status, query).toBe(400);
      expect(a.json().error.message).toContain(says);
    }
  });

  it('archives a token on DELETE and keeps its history readable', async () => {
    await s.daemon.runNow({ trigger: 'cli' });
    const dead = (await listTokens(s.db, {})).find((t) => t.secret === 'sk-dead-token-bbbbbbbb-0002')!;

    const history = await s.call('GET', `/api/v1/tokens/${dead.id}/history`);
    expect(history.json()).toMatchObject({
      token: { id: Number(dead.id), mask: 'sk-d…0002', state: 'suspect' },
      history: [{ verdict: 'dead', reason: 'upstream_rejected', http_status: 200 }],
    });

    const removed = await s.call('DELETE', `/api/v1/tokens/${dead.id}`);
    expect(removed.json()).toEqual({ archived: { id: Number(dead.id), mask: 'sk-d…0002', fingerprint: dead.fingerprint } });
    expect((await listTokens(s.db, {})).map((t) => t.id)).not.toContain(dead.id);
    const archive = await s.db.kysely.selectFrom('token_archive').select(['fingerprint', 'reason']).execute();
    expect(archive).toEqual([{ fingerprint: dead.fingerprint, reason: 'user_removed' }]);

    expect((await s.call('DELETE', `/api/v1/tokens/${dead.id}`)).status).toBe(404);
    const after = (await s.call('GET', `/api/v1/tokens/${dead.id}/history?limit=5`)).json();
    expect(after.token).toBeNull();
    expect(after.history).toHaveLength(1);

    expect((await s.call('GET', '/api/v1/tokens/999999/history')).status).toBe(404);
    expect((await s.call('GET', '/api/v1/tokens/abc/history')).status).toBe(400);
    expect((await s.call('GET', `/api/v1/tokens/${dead.id}/history?limit=5000`)).status).toBe(400);
  });

  it('starts a run with POST /runs: 202 with its id before it ends, then GET /runs shows it', async () => {
    let release!: () => void;
    mock.setBehaviour('sk-live-token-aaaaaaaa-0001', { kind: 'held', until: new Promise<void>((r) => (release = r)), then: 'live' });

    const a = await s.call('POST', '/api/v1/runs', { body: { provider: 'deep', pool: 'default' } });

    expect(a.status).toBe(202);
    const runId = a.json().run_id;
    expect(a.headers.get('location')).toBe(`/api/v1/runs/${runId}`);
    expect((await s.call('GET', `/api/v1/runs/${runId}`)).json().run).toMatchObject({
      id: runId,
      status: 'running',
      trigger: 'api',
      scope: 'deep/default',
    });

    release();
    await s.daemon.context.runs.idle();
    expect((await s.call('GET', `/api/v1/runs/${runId}`)).json().run).toMatchObject({
      id: runId,
      status: 'done',
      checked: 5,
      live: 3,
      dead: 1,
      unknown: 1,
    });

    const forced = await s.call('POST', '/api/v1/runs', { body: { force: true } });
    expect(forced.status).toBe(202);
    await s.daemon.context.runs.idle();
    const runs = (await s.call('GET', '/api/v1/runs?limit=1')).json().runs;
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ id: forced.json().run_id, scope: 'all', checked: 5 });
    expect(mock.calls).toHaveLength(10);
    // no body at all is a run of everything too
    expect((await s.call('POST', '/api/v1/runs')).status).toBe(202);
  });

  it('refuses bad run requests', async () => {
    for (const [body, status, says] of [
      [{ provider: 'nope' }, 400, "unknown provider 'nope'"],
      [{ force: 'yes' }, 400, 'force must be true or false'],
      [{ pool: 'a b' }, 400, 'pool must be letters'],
    ] as const) {
      const a = await s.call('POST', '/api/v1/runs', { body });
      expect(a.status).toBe(status);
      expect(a.json().error.message).toContain(says);
    }
    expect((await s.call('GET', '/api/v1/runs/424242')).status).toBe(404);
    expect((await s.call('GET', '/api/v1/runs?limit=9999')).status).toBe(400);
  });

  it('no route answers a secret, with known tokens loaded and checked', async () => {
    await s.daemon.runNow({ trigger: 'cli' });
    const token = (await listTokens(s.db, {}))[0]!;
    const run = (await s.call('GET', '/api/v1/runs')).json().runs[0];
    const sample = (pattern: string, name: string) => (name === 'id' ? String(pattern.includes('/runs/') ? run.id : token.id) : 'deep');
    const bodies: Record<string, unknown> = {
      'POST /api/v1/providers': { name: 'other', kind: 'free-api', url: mock.checkUrl },
      'POST /api/v1/tokens': { provider: 'deep', tokens: Object.keys(SECRETS) },
      'POST /api/v1/runs': { provider: 'deep' },
    };
    const routes = [...healthRoutes, ...metricsRoutes, ...legacyRoutes, ...apiRoutes];
    // DELETEs last, so every other route answers about a full database.
    routes.sort((a, b) => Number(a.method === 'DELETE') - Number(b.method === 'DELETE'));
    for (const r of routes) {
      const path = r.path.replace(/\{(\w+)\}/g, (_m, name: string) => sample(r.path, name));
      const query = r.method === 'GET' && path.startsWith('/api/LLM_TokenCheck') ? '?cached=1' : '';
      const a = await s.call(r.method, path + query, { body: bodies[`${r.method} ${r.path}`] });
      expect(a.status, `${r.method} ${r.path}`).toBeLessThan(500);
    }
    expect(s.answers.length).toBe(routes.length + 1);
    // the afterEach scan covers these answers
  });
});
