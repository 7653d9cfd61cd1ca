import { findProvider, type Provider } from '../../src/db/providers.js';
import type { Verdict } from '../../src/db/schema.js';
import { importTokens, listTokens } from '../../src/db/tokens.js';
import type { Db } from '../../src/db/connect.js';
import { appendHistory, type HistoryRowInput } from '../../src/db/history.js';
import { fingerprint } from '../../src/secret.js';
import { API_SECRET, servedDaemon, type Served } from './http.js';
import { startMockFreeApi, type Behaviour, type MockFreeApi } from './mock-free-api.js';

/** The pool the console tests look at: what each token answers, and the label some carry. */
export const POOL: Record<string, { answer: Behaviour; label?: string }> = {
  'sk-live-console-aaaa-0001': { answer: 'live', label: 'team <b>alpha</b>' },
  'sk-live-console-bbbb-0002': { answer: 'live' },
  'sk-live-console-cccc-0003': { answer: 'live', label: '<img src=x onerror=alert(1)>' },
  'sk-dead-console-dddd-0004': { answer: 'dead' },
  'sk-html-console-eeee-0005': { answer: 'html_502' },
};
export const FREE_POOL = ['sk-free-console-ffff-0006', 'sk-free-console-gggg-0007'];
/** Imported after the runs: never checked. */
export const LATE = 'sk-late-console-hhhh-0008';

export const ALL_SECRETS = [API_SECRET, ...Object.keys(POOL), ...FREE_POOL, LATE];

export interface Seeded {
  s: Served;
  mock: MockFreeApi;
  deep: Provider;
  close(): Promise<void>;
}

/**
 * A daemon with provider `deep` (a free-api on loopback), pools `default` and `free`, two runs
 * (the dead token is confirmed and, with TSCHK_PRUNE=delete, archived) and one token added later.
 */
export async function seededConsole(databaseUrl: string, env: Record<string, string> = {}): Promise<Seeded> {
  const mock = await startMockFreeApi({ defaultBehaviour: 'live' });
  for (const [secret, { answer }] of Object.entries(POOL)) mock.setBehaviour(secret, answer);
  const s = await servedDaemon(databaseUrl, {
    TokenStatuCheckUrls__DeepTokenCheckUrl: mock.checkUrl,
    TSCHK_RETRIES: '0',
    TSCHK_PRUNE: 'delete',
    TSCHK_MIN_INTERVAL_S: '0',
    ...env,
  });
  const deep = (await findProvider(s.db, 'deep'))!;
  for (const [secret, { label }] of Object.entries(POOL)) {
    await importTokens(s.db, { providerId: deep.id, pool: 'default', entries: [secret], source: 'cli', label: label ?? null });
  }
  await importTokens(s.db, { providerId: deep.id, pool: 'free', entries: FREE_POOL, source: 'cli' });
  await s.daemon.runNow({ trigger: 'cli' });
  await s.daemon.runNow({ trigger: 'cli', force: true });
  await importTokens(s.db, { providerId: deep.id, pool: 'default', entries: [LATE], source: 'cli' });
  return {
    s,
    mock,
    deep,
    async close() {
      await s.daemon.stop();
      await mock.close();
    },
  };
}

/**
 * History of the last `days` days for every token of the provider, one check a day, appended
 * straight to the history (the daily live share is read from it): the live share dips in the
 * middle of the month, as an outage would make it.
 */
export async function seedDays(db: Db, provider: Provider, days: number, now = new Date()): Promise<void> {
  const tokens = await listTokens(db, { providerId: provider.id });
  const rows: HistoryRowInput[] = [];
  for (let d = days; d >= 1; d--) {
    const at = new Date(now.getTime() - d * 86_400_000);
    tokens.forEach((t, i) => {
      const dip = d >= 12 && d <= 15;
      const verdict: Verdict = dip && i % 2 === 0 ? 'unknown' : i % 5 === 4 ? 'dead' : 'live';
      rows.push({
        run_id: null,
        token_id: t.id,
        provider_id: provider.id,
        fingerprint: fingerprint(t.secret),
        checked_at: at,
        verdict,
        reason: verdict === 'live' ? 'upstream_accepted' : verdict === 'dead' ? 'upstream_rejected' : 'http_502',
        http_status: 200,
        latency_ms: 80 + ((d * 37 + i * 11) % 900),
        balance: null,
        currency: null,
        detail: null,
      });
    });
  }
  for (let i = 0; i < rows.length; i += 2000) await appendHistory(db, rows.slice(i, i + 2000));
}
