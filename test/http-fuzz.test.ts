// Hostile input against every route, on every dialect: whatever a client sends, the answer is a
// 2xx/4xx (never a 5xx, never a dropped connection) and never holds a secret. Requests go out on
// raw sockets, byte for byte: fetch would resolve `..` and refuse some targets before sending.
// The whole fuzz runs on SQLite; a server dialect gets the cases that sent SQL there. One that
// was refused before any statement (a bad body, a wrong credential) took no path that depends on
// the dialect: running it again against PostgreSQL or MariaDB would prove nothing more. Nor would
// one that sent the very statements, with the same values, as an earlier case (a query parameter
// the route ignores): a server gets the first case of each such set.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { upsertProvider } from '../src/db/providers.js';
import { importTokens, listTokens } from '../src/db/tokens.js';
import { listRuns } from '../src/db/runs.js';
import type { Route } from '../src/http/router.js';
import { ROUTES } from '../src/http/server.js';
import { describeEachDialect, freshDatabaseUrl } from './helpers/databases.js';
import { API_SECRET, servedDaemon, type Served } from './helpers/http.js';
import { startMockFreeApi, type MockFreeApi } from './helpers/mock-free-api.js';
import { startMockOfficial, type MockOfficial } from './helpers/mock-official.js';
import { rawCall, type RawAnswer, type RawRequest } from './helpers/raw-http.js';

const MAX_ID = 2 ** 31 - 1;

const STORED = ['fz-stored-live-token-000001', 'fz-stored-dead-token-000002', 'fz-stored-live-token-000003'];
const KEY = 'sk-fz-official-key-0000000000000001';
const ACCOUNT = '13800000000-fz-account-password';
/** Hostile values that look like tokens: they must not come back in any answer either. */
const LONG_TOKEN = `fz-long-${'x'.repeat(200_000)}`;
const NUL_TOKEN = 'fz-nul-token-\u0000-000004';
const SECRETS = [API_SECRET, ...STORED, KEY, ACCOUNT, LONG_TOKEN, NUL_TOKEN];

const HOSTILE_SEGMENTS = [
  '0',
  String(MAX_ID + 1),
  '4294967296',
  '9223372036854775808',
  '99999999999999999999999999',
  '-1',
  '1.5',
  '1e3',
  '0x1f',
  '%00',
  '1%00',
  'deep%00',
  '..',
  '.',
  '%2e%2e',
  '%2E',
  '..%2F..%2Fhealthz',
  '%2F',
  '%5C',
  '%E0%A4%A',
  '%F0%9F%92%A9',
  '%EF%BC%91',
  `${'a'.repeat(3000)}`,
  "'%20or%201=1--",
];

const HOSTILE_QUERY_VALUES = [
  '',
  '0',
  String(MAX_ID),
  String(MAX_ID + 1),
  '99999999999999999999999999',
  '-1',
  '1.5',
  '1e3',
  '%00',
  'deep%00',
  'x'.repeat(5000),
  '%E0%A4%A',
  '%F0%9F%92%A9'.repeat(100),
  "'%20or%201=1--",
];
const QUERY_KEYS = ['limit', 'cursor', 'provider', 'pool', 'state', 'cached', '%00', 'a'.repeat(2000)];

const HOSTILE_JSON: unknown[] = [
  'a\u0000b',
  '\u0000',
  'x'.repeat(200_000),
  '🙂'.repeat(300),
  '\ud800',
  '',
  ' ',
  MAX_ID + 1,
  3_000_000_000,
  2 ** 53 + 2,
  1e308,
  -1,
  0,
  1.5,
  true,
  false,
  null,
  [],
  {},
  ['a\u0000'],
  [MAX_ID + 1],
  { a: '\u0000' },
];

/** A body that is valid for the route, which the fuzz spoils one field at a time. */
const BODIES: Record<string, (mock: MockFreeApi) => Record<string, unknown>> = {
  'POST /api/v1/providers': (mock) => ({ name: 'fz-provider', kind: 'free-api', url: mock.checkUrl, concurrency: 2 }),
  'POST /api/v1/tokens': () => ({ provider: 'deep', pool: 'fuzz', tokens: ['fz-imported-token-0000005'], expect: 'live', label: 'fz' }),
  'POST /api/v1/runs': () => ({ provider: 'deep', pool: 'default', force: false }),
};
/** Values that only make sense for one field. */
const FIELD_EXTRAS: Record<string, unknown[]> = {
  tokens: [[LONG_TOKEN], [`ok-token-00000006,${LONG_TOKEN}`], [NUL_TOKEN], ['t'.repeat(4097)], Array(5).fill(['x'])],
  url: ['http://x/\u0000', `http://x/${'a'.repeat(2000)}`, 'http://[::1', 'javascript:alert(1)'],
  concurrency: [10_001, 2 ** 31, -(2 ** 31) - 1, '3', Infinity],
  name: ['a'.repeat(65), 'fz\u0000', '../etc'],
  label: ['L'.repeat(256), '🙂'.repeat(256)],
  pool: ['p'.repeat(65), 'fz\u0000'],
  provider: ['p'.repeat(65), 'deep\u0000'],
};
const WHOLE_BODIES: Array<string | Buffer> = [
  '',
  'null',
  '[]',
  '"a string"',
  '1e999',
  '{"__proto__":{"polluted":1}}',
  '{"constructor":{"prototype":{"polluted":1}}}',
  '{"\u0000":1}',
  `${'['.repeat(50_000)}${']'.repeat(50_000)}`,
  `${'{"a":'.repeat(20_000)}1${'}'.repeat(20_000)}`,
  Buffer.from([0xff, 0xfe, 0x00, 0x7b]),
  '{"tokens":["a"],"tokens":["b"]}',
];

interface Case extends RawRequest {
  name: string;
}

/** The fuzz cases (by their place in the list) that sent statements on SQLite, none the same as an earlier one's; unset until that has run. */
let reachedSql: Set<number> | undefined;

/** A statement and its values, times left out: two cases that differ only in when they ran sent the same. */
function statementKey(sql: string, parameters: readonly unknown[]): string {
  const values = parameters.map((v) =>
    v instanceof Date || (typeof v === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d/.test(v)) || (typeof v === 'number' && v > 1e12)
      ? 'time'
      : v,
  );
  return `${sql}\n${JSON.stringify(values)}`;
}

function routeKey(r: Route): string {
  return `${r.method} ${r.path}`;
}

/** Every hostile request for one route: ids, names, cursors, query parameters and bodies. */
function casesFor(r: Route, sample: (r: Route, name: string) => string, mock: MockFreeApi): Case[] {
  const out: Case[] = [];
  const auth: Array<[string, string]> = [['Authorization', `Bearer ${API_SECRET}`]];
  const fill = (except?: string, value?: string) =>
    r.path.replace(/\{(\w+)\}/g, (_m, name: string) => (name === except ? value! : sample(r, name)));
  const path = fill();
  const key = routeKey(r);
  const bodyOf = BODIES[key];
  const validBody = bodyOf ? JSON.stringify(bodyOf(mock)) : undefined;
  const legacyGet = r.method === 'GET' && r.path.startsWith('/api/LLM_TokenCheck');
  const baseQuery = legacyGet ? 'cached=1&' : '';

  for (const [, name] of r.path.matchAll(/\{(\w+)\}/g)) {
    for (const seg of HOSTILE_SEGMENTS) {
      out.push({
        name: `${key} {${name}}=${seg.slice(0, 40)}`,
        method: r.method,
        target: `${fill(name, seg)}?${baseQuery}`,
        headers: auth,
        body: validBody,
      });
    }
  }
  const keys = r.method === 'GET' ? QUERY_KEYS : ['limit', 'provider', '%00'];
  const values = r.method === 'GET' ? HOSTILE_QUERY_VALUES : [String(MAX_ID + 1), '%00', 'x'.repeat(5000)];
  for (const k of keys) {
    for (const v of values) {
      out.push({
        name: `${key} ?${k.slice(0, 20)}=${v.slice(0, 40)}`,
        method: r.method,
        target: `${path}?${baseQuery}${k}=${v}`,
        headers: auth,
        body: validBody,
      });
    }
  }
  if (bodyOf) {
    const base = bodyOf(mock);
    for (const field of Object.keys(base)) {
      for (const v of [...HOSTILE_JSON, ...(FIELD_EXTRAS[field] ?? [])]) {
        const body = JSON.stringify({ ...base, [field]: v });
        out.push({ name: `${key} body.${field}=${JSON.stringify(v)?.slice(0, 40)}`, method: r.method, target: path, headers: auth, body });
      }
    }
  }
  for (const body of bodyOf ? WHOLE_BODIES : [WHOLE_BODIES[7]!, WHOLE_BODIES[10]!]) {
    out.push({
      name: `${key} body ${JSON.stringify(body.toString()).slice(0, 40)}`,
      method: r.method,
      target: `${path}?${baseQuery}`,
      headers: auth,
      body,
    });
  }
  // Credentials the auth check must refuse (or, for open routes, ignore) without a 5xx.
  for (const a of [`Bearer ${'x'.repeat(8000)}`, 'Bearer', 'Basic Og==', `bearer ${API_SECRET.toUpperCase()}`]) {
    out.push({
      name: `${key} Authorization: ${a.slice(0, 30)}`,
      method: r.method,
      target: `${path}?${baseQuery}`,
      headers: [['Authorization', a]],
    });
  }
  return out;
}

describeEachDialect('hostile HTTP input', (dialect) => {
  let free: MockFreeApi;
  let official: MockOfficial;
  let database: { url: string; drop: () => Promise<void> };
  let s: Served;
  let port: number;
  const statements: string[] = [];
  const answers: Array<{ name: string; answer: RawAnswer }> = [];

  const send = async (c: Case): Promise<RawAnswer> => {
    const answer = await rawCall(port, c);
    answers.push({ name: c.name, answer });
    return answer;
  };
  const authed = (method: string, target: string, body?: unknown): Promise<RawAnswer> =>
    send({
      name: `${method} ${target.slice(0, 60)}`,
      method,
      target,
      headers: [['Authorization', `Bearer ${API_SECRET}`]],
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });

  beforeAll(async () => {
    free = await startMockFreeApi();
    free.setBehaviour(STORED[0]!, 'live');
    free.setBehaviour(STORED[1]!, 'dead');
    free.setBehaviour(STORED[2]!, 'live');
    official = await startMockOfficial();
    official.addAccount('13800000000', { password: 'fz-account-password', estimation: '123' });
    database = await freshDatabaseUrl(dialect);
    s = await servedDaemon(
      database.url,
      {
        TokenStatuCheckUrls__DeepTokenCheckUrl: free.checkUrl,
        TokenStatuCheckUrls__QwenTokenCheckUrl: free.checkUrl,
        TSCHK_DEEPSEEK_API_URL: official.baseUrl,
        TSCHK_DEEPSEEK_PLATFORM_URL: official.baseUrl,
        TSCHK_RETRIES: '0',
      },
      { onStatement: (sql, parameters) => statements.push(statementKey(sql, parameters)) },
    );
    port = s.daemon.httpAddress!.port;
    const deep = await upsertProvider(s.db, { name: 'deep', kind: 'free-api', checkUrl: free.checkUrl });
    await importTokens(s.db, { providerId: deep.id, pool: 'default', entries: STORED, source: 'cli' });
    const keys = await upsertProvider(s.db, { name: 'fz-keys', kind: 'deepseek-key', checkUrl: official.baseUrl });
    await importTokens(s.db, { providerId: keys.id, pool: 'default', entries: [KEY], source: 'cli' });
    const accounts = await upsertProvider(s.db, { name: 'fz-accounts', kind: 'deepseek-account', checkUrl: official.baseUrl });
    await importTokens(s.db, { providerId: accounts.id, pool: 'default', entries: [ACCOUNT], source: 'cli', wholeEntries: true });
    await s.daemon.runNow({ trigger: 'cli' });
  });

  afterAll(async () => {
    if (s) await s.daemon.context.runs.idle();
    // One assertion for all of them: one per answer and secret was some 50,000, a second of the run.
    const log = s?.log.text ?? '';
    const leaks = (s ? SECRETS : []).flatMap((secret, k) => [
      ...answers.filter(({ answer }) => answer.raw.includes(secret)).map(({ name }) => `${name} answers secret #${k}`),
      ...(log.includes(secret) ? [`the log holds secret #${k}`] : []),
    ]);
    expect(leaks).toEqual([]);
    await s?.daemon.stop();
    await free?.close();
    await official?.close();
    await database?.drop();
  });

  it('answers every route under hostile ids, names, cursors, query parameters and bodies with a 2xx/4xx JSON answer', async () => {
    const token = (await listTokens(s.db, {}))[0]!;
    const run = (await listRuns(s.db, 1))[0]!;
    // A DELETE aims at nothing, so that the fixtures outlive the fuzz.
    const sample = (r: Route, name: string) =>
      name === 'id'
        ? String(r.method === 'DELETE' ? MAX_ID : r.path.includes('/runs/') ? run.id : token.id)
        : name === 'service'
          ? 'deep'
          : 'nobody';
    // DELETEs last, so that every other route answers about a full database.
    const routes = [...ROUTES].sort((a, b) => Number(a.method === 'DELETE') - Number(b.method === 'DELETE'));
    const cases = routes.flatMap((r) => casesFor(r, sample, free));
    // Without the SQLite run's list (that suite left out), every case runs here too.
    const fromSqlite = dialect === 'sqlite' ? undefined : reachedSql;
    const reached = new Set<number>();
    const sent = new Set<string>();
    let anySql = 0;
    const failures: string[] = [];
    for (const [i, c] of cases.entries()) {
      if (fromSqlite && !fromSqlite.has(i)) continue;
      // Taken from the request until its answer: a statement of something else in between (a run
      // a case started) only makes a case look as if it sent SQL no other did, never the other way.
      statements.length = 0;
      const a = await send(c);
      const what = statements.join('\n\n');
      if (what) anySql++;
      if (what && !sent.has(what)) reached.add(i);
      sent.add(what);
      const isErrorShape = (() => {
        try {
          const e = a.json().error;
          return typeof e.code === 'string' && typeof e.message === 'string';
        } catch {
          return false;
        }
      })();
      if (a.status < 200 || a.status >= 500) failures.push(`${c.name} → ${a.status} ${a.text.slice(0, 160)}`);
      else if (a.status >= 400 && !isErrorShape) failures.push(`${c.name} → ${a.status} without a JSON error: ${a.text.slice(0, 160)}`);
    }
    expect(cases.length).toBeGreaterThan(700);
    expect(failures).toEqual([]);
    // About 1,100 cases reach SQL on SQLite today, some 64 of them with statements of their own: a
    // count that stopped counting would leave the servers no case.
    if (!fromSqlite) expect(anySql).toBeGreaterThan(500);
    expect(reached.size).toBeGreaterThan(50);
    if (dialect === 'sqlite') reachedSql = reached;
    // The database still answers, and the fuzz neither stored a hostile token nor lost one.
    const secrets = (await listTokens(s.db, {})).map((t) => t.secret);
    expect(secrets).toEqual(expect.arrayContaining([...STORED, KEY, ACCOUNT]));
    expect(secrets.filter((t) => t.includes('\u0000') || [...t].length > 4096)).toEqual([]);
    // Some 4,600 requests in a row: a busy machine has taken more than the default 30 s over them.
  }, 120_000);

  it.each([
    { target: `/api/v1/tokens/${MAX_ID + 1}/history`, says: ['id', String(MAX_ID)] },
    { target: '/api/v1/tokens/99999999999999999999/history', says: ['id', String(MAX_ID)] },
    { target: `/api/v1/runs/${MAX_ID + 1}`, says: ['id', String(MAX_ID)] },
    { target: `/api/v1/tokens?cursor=${MAX_ID + 1}`, says: ['cursor', String(MAX_ID)] },
    { target: '/api/v1/tokens?provider=deep%00', says: ['provider', 'NUL'] },
    { target: '/api/v1/tokens?pool=%00', says: ['pool', 'NUL'] },
    { target: `/api/v1/tokens?provider=${'p'.repeat(65)}`, says: ['provider', '64'] },
    { target: `/api/v1/tokens?pool=${'p'.repeat(65)}`, says: ['pool', '64'] },
    { target: '/api/LLM_TokenCheck/Check/deep?cached=%00', says: ['cached', 'NUL'] },
  ])('GET $target → 400 naming the field and the limit', async ({ target, says }) => {
    const a = await authed('GET', target);
    expect(a.status).toBe(400);
    expect(a.json().error.code).toBe('bad_request');
    for (const word of says) expect(a.json().error.message).toContain(word);
  });

  it(`DELETE /api/v1/tokens/${MAX_ID + 1} → 400 naming the limit`, async () => {
    const a = await authed('DELETE', `/api/v1/tokens/${MAX_ID + 1}`);
    expect(a.status).toBe(400);
    expect(a.json().error.message).toContain(String(MAX_ID));
  });

  it.each([
    { route: '/api/v1/tokens', body: { provider: 'deep', tokens: [LONG_TOKEN] }, says: ['tokens[0]', '4096'] },
    {
      route: '/api/v1/tokens',
      body: { provider: 'deep', tokens: ['fine-token-000000007', `ok-00000008,${LONG_TOKEN}`] },
      says: ['tokens[1]', '4096'],
    },
    { route: '/api/v1/tokens', body: { provider: 'deep', tokens: ['fine-token-000000009', NUL_TOKEN] }, says: ['tokens[1]', 'NUL'] },
    { route: '/api/v1/tokens', body: { provider: 'deep', tokens: ['t-0000000010'], label: 'a\u0000b' }, says: ['label', 'NUL'] },
    { route: '/api/v1/tokens', body: { provider: 'deep\u0000', tokens: ['t-0000000011'] }, says: ['provider', 'NUL'] },
    { route: '/api/v1/tokens', body: { provider: 'p'.repeat(65), tokens: ['t-0000000012'] }, says: ['provider', '64'] },
    { route: '/api/v1/tokens', body: { provider: 'deep', tokens: ['t-0000000013'], label: '🙂'.repeat(256) }, says: ['label', '255'] },
    {
      route: '/api/v1/providers',
      body: { name: 'fz-c', kind: 'free-api', url: 'http://x/t', concurrency: 3_000_000_000 },
      says: ['concurrency', '10000'],
    },
    {
      route: '/api/v1/providers',
      body: { name: 'fz-c', kind: 'free-api', url: 'http://x/t', concurrency: MAX_ID + 1 },
      says: ['concurrency', '10000'],
    },
    { route: '/api/v1/providers', body: { name: 'fz-c', kind: 'free-api', url: 'http://x/\u0000' }, says: ['url', 'NUL'] },
    { route: '/api/v1/providers', body: { name: 'fz-c', kind: 'free-api\u0000', url: 'http://x/t' }, says: ['kind', 'NUL'] },
    { route: '/api/v1/providers', body: { name: 'fz-c', kind: 'x'.repeat(100_000), url: 'http://x/t' }, says: ['kind'] },
    { route: '/api/v1/runs', body: { provider: 'deep\u0000' }, says: ['provider', 'NUL'] },
    { route: '/api/v1/runs', body: { provider: 'p'.repeat(65) }, says: ['provider', '64'] },
    { route: '/api/v1/runs', body: { pool: 'fz\u0000' }, says: ['pool', 'NUL'] },
  ])('POST $route refuses $says.0 with a 400 naming it and its limit', async ({ route, body, says }) => {
    const a = await authed('POST', route, body);
    expect(a.status).toBe(400);
    expect(a.headers.connection).toBe('close');
    for (const word of says) expect(a.json().error.message).toContain(word);
    // An echo of what was sent stays short: the answer never carries the hostile value back.
    expect(a.text.length).toBeLessThan(600);
  });

  it('accepts values right at the limits on this dialect', async () => {
    // 4096 four-byte characters: 16 KiB, within MySQL's 64 KiB TEXT.
    const widest = `fz-${'🙂'.repeat(4093)}`;
    SECRETS.push(widest);
    const imported = await authed('POST', '/api/v1/tokens', { provider: 'deep', pool: 'edge', tokens: [widest], label: '🙂'.repeat(255) });
    expect(imported.status, imported.text).toBe(200);
    expect(imported.json()).toMatchObject({ added: 1 });
    const stored = (await listTokens(s.db, { pool: 'edge' }))[0]!;
    expect(stored.secret).toBe(widest);
    expect(stored.label).toBe('🙂'.repeat(255));

    const url = `${free.checkUrl}?${'q'.repeat(1024 - free.checkUrl.length - 1)}`;
    const provider = await authed('POST', '/api/v1/providers', { name: 'p'.repeat(64), kind: 'free-api', url, concurrency: 10_000 });
    expect(provider.status, provider.text).toBe(201);
    expect(provider.json().provider).toMatchObject({ name: 'p'.repeat(64), check_url: url });

    expect((await authed('GET', `/api/v1/tokens/${MAX_ID}/history`)).status).toBe(404);
    expect((await authed('GET', `/api/v1/runs/${MAX_ID}`)).status).toBe(404);
    expect((await authed('DELETE', `/api/v1/tokens/${MAX_ID}`)).status).toBe(404);
    const page = await authed('GET', `/api/v1/tokens?cursor=${MAX_ID}`);
    expect(page.status).toBe(200);
    expect(page.json()).toEqual({ tokens: [], next_cursor: null });
  });

  it.each([
    { target: 'http://[::1', status: 400 },
    { target: 'http://[::1/api/v1/tokens', status: 400 },
    { target: '*', status: 400 },
    { target: 'api/v1/tokens', status: 400 },
    { target: '//evil.example/api/v1/tokens', status: 404 },
    { target: '/healthz/../api/v1/tokens', status: 404 },
    { target: '/healthz/%2e%2e/api/v1/tokens', status: 404 },
    { target: '/healthz/%2E%2E/api/v1/tokens', status: 404 },
    { target: '/healthz/.%2e/api/v1/tokens', status: 404 },
    { target: '/api/v1/./tokens', status: 404 },
    { target: '/api/v1/%2e/tokens', status: 404 },
    { target: '/api//v1/tokens', status: 404 },
    { target: '/api%2Fv1%2Ftokens', status: 404 },
    { target: '/api/v1%2Ftokens', status: 404 },
    { target: '/x/..%2F..%2Fapi/v1/tokens', status: 404 },
    { target: '/api/v1/tokens/%2e%2e/history', status: 404 },
    { target: '/api/v1/tokens/..%2F1/history', status: 404 },
    { target: 'http://127.0.0.1/healthz/../api/v1/tokens', status: 404 },
    // What stays served: an absolute-form target (RFC 9112 asks servers to accept it) and a trailing slash.
    { target: `http://127.0.0.1:1/api/v1/tokens`, status: 200 },
    { target: '/api/v1/tokens/', status: 200 },
    { target: '/API/V1/TOKENS', status: 200 },
  ])('GET $target → $status', async ({ target, status }) => {
    const a = await authed('GET', target);
    expect(a.status, a.text).toBe(status);
    if (status >= 400) expect(a.json().error.code).toEqual(expect.any(String));
  });

  it('routes DELETE with an encoded slash or dots in the name to nothing', async () => {
    for (const target of ['/api/v1/providers/..%2F..%2Fapi%2Fv1%2Ftokens', '/api/v1/providers/%2e%2e', '/api/v1/providers/deep%2Ffree']) {
      const a = await authed('DELETE', target);
      expect(a.status, target).toBe(404);
    }
    expect((await listTokens(s.db, {})).length).toBeGreaterThan(0);
  });
});
