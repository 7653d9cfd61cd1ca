import type { DialectName } from '../src/db/dialect.js';

/**
 * The README's example queries, per dialect. The test of the history layout runs them on every
 * database and finds each in the README (written there for PostgreSQL, with the fingerprint
 * '3c469e9d6c58' and the day '2026-11-01'; the other dialects' time conditions beside them).
 */
export const README_FINGERPRINT = '3c469e9d6c58';
export const README_DAY = '2026-11-01';

/** Each dialect's "in the last day" and "in the last 30 days", as the README gives them. */
export const TIME_CONDITIONS = {
  lastDay: {
    postgres: `s.checked_at > now() - interval '1 day'`,
    mysql: `s.checked_at > UTC_TIMESTAMP() - INTERVAL 1 DAY`,
    sqlite: `s.checked_ms > (unixepoch('now') - 86400) * 1000`,
  },
  last30: {
    postgres: `s.checked_at > now() - interval '30 days'`,
    mysql: `s.checked_at > UTC_TIMESTAMP() - INTERVAL 30 DAY`,
    sqlite: `s.checked_ms > (unixepoch('now') - 30 * 86400) * 1000`,
  },
} as const;

export function readmeQueries(dialect: DialectName, fingerprint: string, sinceDay: string) {
  const lastDay = TIME_CONDITIONS.lastDay[dialect];
  const last30 = TIME_CONDITIONS.last30[dialect];
  return {
    deadPerProviderLastDay: `SELECT p.name, count(*) AS dead_checks, count(DISTINCT s.token_id) AS tokens
FROM token_status s JOIN providers p ON p.id = s.provider_id
WHERE s.verdict = 'dead' AND ${lastDay}
GROUP BY p.name ORDER BY dead_checks DESC`,
    tokenByFingerprint: `SELECT checked_at, verdict, reason, http_status, latency_ms
FROM token_status WHERE fingerprint = '${fingerprint}' ORDER BY checked_at DESC LIMIT 50`,
    balanceOverTime: `SELECT p.name AS provider, s.fingerprint, t.label, s.checked_at, s.verdict, s.balance, s.currency
FROM token_status s
JOIN providers p ON p.id = s.provider_id
LEFT JOIN tokens t ON t.id = s.token_id
WHERE s.balance IS NOT NULL AND ${last30}
ORDER BY p.name, s.fingerprint, s.checked_at`,
    liveSharePerPool: `SELECT p.name, t.pool, count(*) AS tokens,
       sum(CASE WHEN t.last_verdict = 'live' THEN 1 ELSE 0 END) AS live
FROM tokens t JOIN providers p ON p.id = t.provider_id GROUP BY p.name, t.pool`,
    dailyPerProvider: `SELECT p.name, d.day, sum(d.checks) AS checks, sum(d.live) AS live, sum(d.dead) AS dead
FROM token_daily d JOIN providers p ON p.id = d.provider_id
WHERE d.day >= '${sinceDay}'
GROUP BY p.name, d.day ORDER BY p.name, d.day`,
    tokenDays: `SELECT d.day, d.checks, d.live, d.dead, d.latency_avg_ms, d.last_reason
FROM token_daily d JOIN history_tokens k ON k.token_id = d.token_id
WHERE k.fingerprint = '${fingerprint}' ORDER BY d.day`,
    tokenEvents: `SELECT at, event, reason, run_id, actor FROM token_events
WHERE fingerprint = '${fingerprint}' ORDER BY id`,
  };
}
