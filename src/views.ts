import type { Config } from './config.js';
import type { DialectProfile } from './db/dialect.js';
import type { Provider } from './db/providers.js';
import type { CheckRunRow, TokenRow, TokenStatusRow } from './db/schema.js';
import { redactDatabaseUrl } from './db/url.js';
import { describeSecret } from './secret.js';

/**
 * How rows are shown outside the database — the JSON API and `tschk … --json` alike. Field names
 * are the columns users query in SQL; a token is a mask and a fingerprint, never the secret.
 */

export function isoTime(dialect: DialectProfile, v: unknown): string | null {
  return dialect.readTime(v)?.toISOString() ?? null;
}

export function providerView(p: Provider, config: Readonly<Config>) {
  return {
    name: p.name,
    kind: p.kind,
    check_url: p.checkUrl && redactDatabaseUrl(p.checkUrl),
    enabled: p.enabled,
    concurrency: p.concurrency,
    declared_by: config.legacyProviders.find((d) => d.name === p.name)?.variable ?? null,
  };
}

export function tokenView(t: TokenRow, dialect: DialectProfile, providerName: string | undefined) {
  const time = (v: unknown) => isoTime(dialect, v);
  return {
    id: Number(t.id),
    provider: providerName ?? null,
    pool: t.pool,
    position: Number(t.position),
    ...describeSecret(t.secret),
    label: t.label,
    source: t.source,
    expect: t.expect,
    state: t.state,
    consecutive_dead: Number(t.consecutive_dead),
    last_verdict: t.last_verdict,
    last_reason: t.last_reason,
    last_checked_at: time(t.last_checked_at),
    last_live_at: time(t.last_live_at),
    invalid_since: time(t.invalid_since),
    balance: t.balance,
    currency: t.currency,
    created_at: time(t.created_at),
  };
}

export function historyView(h: TokenStatusRow, dialect: DialectProfile) {
  return {
    id: Number(h.id),
    run_id: h.run_id === null ? null : Number(h.run_id),
    token_id: Number(h.token_id),
    fingerprint: h.fingerprint,
    checked_at: isoTime(dialect, h.checked_at),
    verdict: h.verdict,
    reason: h.reason,
    http_status: h.http_status,
    latency_ms: h.latency_ms,
    balance: h.balance,
    currency: h.currency,
    detail: h.detail,
  };
}

export function runView(run: CheckRunRow, dialect: DialectProfile) {
  return {
    id: Number(run.id),
    trigger: run.trigger,
    scope: run.scope,
    status: run.status,
    started_at: isoTime(dialect, run.started_at),
    finished_at: isoTime(dialect, run.finished_at),
    checked: Number(run.checked),
    live: Number(run.live),
    dead: Number(run.dead),
    exhausted: Number(run.exhausted),
    unknown: Number(run.unknown),
    pruned: Number(run.pruned),
    held: Number(run.held),
    error: run.error,
  };
}
