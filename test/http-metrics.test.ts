import { afterEach, beforeEach, expect, it } from 'vitest';
import { findProvider } from '../src/db/providers.js';
import { importTokens } from '../src/db/tokens.js';
import { fingerprint } from '../src/secret.js';
import { describeEachDialect, freshDatabaseUrl } from './helpers/databases.js';
import { API_SECRET, servedDaemon, type Served } from './helpers/http.js';
import { startMockFreeApi, type MockFreeApi } from './helpers/mock-free-api.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The Prometheus text format, strictly: every line is a comment or `name{labels} value`. */
function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    // Values are Go ParseFloat floats: NaN and ±Inf are valid (https://prometheus.io/docs/instrumenting/exposition_formats/).
    const value = /^nan$/i.test(m[3]!) ? NaN : /^[+-]?inf$/i.test(m[3]!) ? Number(m[3]!.replace(/inf/i, 'Infinity')) : Number(m[3]);
    if (Number.isNaN(value) && !/^nan$/i.test(m[3]!)) throw new Error(`not a number: ${line}`);
    samples.push({ name: m[1]!, labels, value });
  }
  return samples;
}

const TOKENS = {
  'mt-live-token-aaaa-000001': 'live',
  'mt-dead-token-bbbb-000002': 'dead',
  'mt-live-token-cccc-000003': 'live',
  'mt-html-token-dddd-000004': 'html_502',
} as const;

describeEachDialect('/metrics and /healthz', (dialect) => {
  let mock: MockFreeApi;
  let database: { url: string; drop: () => Promise<void> };
  let s: Served;

  beforeEach(async () => {
    mock = await startMockFreeApi();
    for (const [t, b] of Object.entries(TOKENS)) mock.setBehaviour(t, b);
    database = await freshDatabaseUrl(dialect);
    s = await servedDaemon(database.url, { TokenStatuCheckUrls__DeepTokenCheckUrl: mock.checkUrl, TSCHK_RETRIES: '0' });
    const deep = (await findProvider(s.db, 'deep'))!;
    await importTokens(s.db, { providerId: deep.id, pool: 'default', entries: Object.keys(TOKENS), source: 'cli' });
  });
  afterEach(async () => {
    for (const secret of [API_SECRET, ...Object.keys(TOKENS)]) {
      for (const a of s.answers) expect(a.text).not.toContain(secret);
    }
    await s.daemon.stop();
    await mock.close();
    await database.drop();
  });

  it('exposes token states, checks, latencies and the last run in the Prometheus text format', async () => {
    const summary = await s.daemon.runNow({ trigger: 'cli' });

    const a = await s.call('GET', '/metrics');

    expect(a.status).toBe(200);
    expect(a.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const samples = parseExposition(a.text);
    const value = (name: string, labels: Record<string, string> = {}) =>
      samples.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v))?.value;

    expect(value('tschk_tokens', { provider: 'deep', pool: 'default', state: 'active' })).toBe(3);
    expect(value('tschk_tokens', { provider: 'deep', pool: 'default', state: 'suspect' })).toBe(1);
    expect(value('tschk_checks_total', { provider: 'deep', verdict: 'live' })).toBe(2);
    expect(value('tschk_checks_total', { provider: 'deep', verdict: 'dead' })).toBe(1);
    expect(value('tschk_checks_total', { provider: 'deep', verdict: 'unknown' })).toBe(1);
    expect(value('tschk_check_duration_seconds_count', { provider: 'deep' })).toBe(4);
    expect(value('tschk_check_duration_seconds_bucket', { provider: 'deep', le: '+Inf' })).toBe(4);
    expect(value('tschk_last_run_checks', { provider: 'deep', verdict: 'live' })).toBe(2);
    expect(value('tschk_last_run_checks', { provider: 'deep', verdict: 'unknown' })).toBe(1);
    expect(value('tschk_last_run_pruned', { provider: 'deep' })).toBe(0);
    expect(value('tschk_last_run_held', { provider: 'deep' })).toBe(0);
    expect(value('tschk_runs_total', { trigger: 'cli', status: 'done' })).toBe(1);
    expect(value('tschk_run_duration_seconds_count')).toBe(1);
    expect(value('tschk_last_run_duration_seconds')).toBe(summary.durationMs / 1000);
    expect(value('tschk_last_run_completed_timestamp_seconds')).toBeCloseTo(Date.parse(summary.finishedAt) / 1000, 0);
    expect(value('process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(value('nodejs_heap_size_used_bytes')).toBeGreaterThan(0);

    // No series per token: neither a secret nor a fingerprint is a label value.
    for (const t of Object.keys(TOKENS)) expect(a.text).not.toContain(fingerprint(t));
  });

  it('reads token states at scrape time, so a change in the database shows without a run', async () => {
    const before = parseExposition((await s.call('GET', '/metrics')).text);
    expect(before.find((x) => x.name === 'tschk_tokens' && x.labels.state === 'active')?.value).toBe(4);
    expect(before.find((x) => x.name === 'tschk_last_run_completed_timestamp_seconds')?.value).toBe(0);

    await s.db.kysely.updateTable('tokens').set({ state: 'disabled' }).execute();

    const after = parseExposition((await s.call('GET', '/metrics')).text);
    expect(after.filter((x) => x.name === 'tschk_tokens').map((x) => [x.labels.state, x.value])).toEqual([['disabled', 4]]);
  });

  it('/healthz: open, 200 with the last run while the database answers, 503 once it is gone', async () => {
    const empty = await s.call('GET', '/healthz', { auth: null });
    expect(empty.status).toBe(200);
    expect(empty.json()).toEqual({ status: 'ok', db: 'ok', lastRun: null });

    const summary = await s.daemon.runNow({ trigger: 'cli' });
    const ok = await s.call('GET', '/healthz', { auth: null });
    expect(ok.json()).toMatchObject({
      status: 'ok',
      db: 'ok',
      lastRun: {
        id: summary.runId,
        status: 'done',
        trigger: 'cli',
        checked: 4,
        live: 2,
        dead: 1,
        unknown: 1,
        finished_at: summary.finishedAt,
      },
    });

    await s.db.close();
    const down = await s.call('GET', '/healthz', { auth: null });
    expect(down.status).toBe(503);
    expect(down.json()).toEqual({ status: 'error', db: 'error', lastRun: null });
  });
});
