import type { ColumnType, Generated, Selectable } from 'kysely';

/** Bound as a Date (PostgreSQL, MySQL) or ISO text (SQLite); read back through `dialect.readTime`. */
export type Timestamp = ColumnType<Date | string, Date | string, Date | string>;

export type Verdict = 'live' | 'dead' | 'exhausted' | 'unknown';
export type TokenState = 'active' | 'suspect' | 'invalid' | 'disabled';
export type TokenSource = 'cli' | 'api' | 'console' | 'file' | 'oneapi';
export type RunTrigger = 'cron' | 'cli' | 'api' | 'console' | 'startup';
export type RunStatus = 'running' | 'done' | 'failed' | 'aborted';

export interface ProvidersTable {
  id: Generated<number>;
  name: string;
  kind: string;
  check_url: string | null;
  enabled: number;
  concurrency: number | null;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface TokensTable {
  id: Generated<number>;
  provider_id: number;
  pool: string;
  position: number;
  secret: string;
  fingerprint: string;
  label: string | null;
  source: TokenSource;
  source_ref: string | null;
  expect: 'live' | 'dead' | null;
  state: TokenState;
  consecutive_dead: number;
  last_verdict: Verdict | null;
  last_reason: string | null;
  last_checked_at: Timestamp | null;
  last_live_at: Timestamp | null;
  invalid_since: Timestamp | null;
  balance: string | null;
  currency: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface TokenStatusTable {
  id: Generated<number>;
  run_id: number | null;
  token_id: number;
  provider_id: number;
  fingerprint: string;
  checked_at: Timestamp;
  verdict: Verdict;
  reason: string;
  http_status: number | null;
  latency_ms: number | null;
  balance: string | null;
  currency: string | null;
  detail: string | null;
}

/** The view over the compact history tables: `checked_ms` is `checked_at` in milliseconds since 1970. */
export interface TokenStatusView extends TokenStatusTable {
  checked_ms: number;
}

/** Raw checks as stored. `at`: milliseconds since 1970 on SQLite, the native timestamp elsewhere. */
export interface HistoryChecksTable {
  token_id: number;
  at: number | Date;
  id: number;
  provider_id: number;
  run_id: number | null;
  verdict: number;
  reason_id: number;
  http_status: number | null;
  latency_ms: number | null;
  balance: string | null;
  currency: string | null;
  detail: string | null;
}

/** Every token that has history: what a check row does not repeat. Stays when the token is removed. */
export interface HistoryTokensTable {
  token_id: number;
  provider_id: number;
  pool: string | null;
  fingerprint: string;
}

export interface HistoryReasonsTable {
  id: Generated<number>;
  reason: string;
}

/** Counters and marks of the history keeper (`next_check_id`, `rolled_until_day`, `rollup_token`). */
export interface HistoryStateTable {
  name: string;
  value: number | string | null;
}

/** One row per token and UTC day ('YYYY-MM-DD'). */
export interface TokenDailyTable {
  token_id: number;
  day: string;
  provider_id: number;
  checks: number;
  live: number;
  dead: number;
  exhausted: number;
  unknown: number;
  latency_min_ms: number | null;
  latency_avg_ms: number | null;
  latency_max_ms: number | null;
  last_reason: string | null;
  last_balance: string | null;
  last_currency: string | null;
}

export type TokenEventKind =
  'suspect' | 'recovered' | 'invalid' | 'held' | 'pruned' | 'removed' | 'restored' | 'channel_disabled' | 'channel_enabled';

/** Who caused an event: a run, or a person through one of these. */
export type EventActor = 'run' | 'cli' | 'api' | 'console';

/** State changes of tokens, kept as long as the daily rollups. */
export interface TokenEventsTable {
  id: Generated<number>;
  at: Timestamp;
  token_id: number | null;
  fingerprint: string | null;
  provider_id: number | null;
  pool: string | null;
  run_id: number | null;
  event: TokenEventKind;
  reason: string | null;
  actor: EventActor | null;
}

export interface CheckRunsTable {
  id: Generated<number>;
  trigger: RunTrigger;
  scope: string;
  status: RunStatus;
  started_at: Timestamp;
  finished_at: Timestamp | null;
  checked: number;
  live: number;
  dead: number;
  exhausted: number;
  unknown: number;
  pruned: number;
  held: number;
  error: string | null;
  /** The `history_checks.at` of the run's first check: where its rows begin in the time index. */
  history_from: number | Date | null;
}

export interface TokenArchiveTable {
  id: Generated<number>;
  token_id: number | null;
  provider_id: number | null;
  provider_name: string;
  pool: string;
  secret: string;
  fingerprint: string;
  label: string | null;
  source: string | null;
  source_ref: string | null;
  expect: string | null;
  last_verdict: string | null;
  last_reason: string | null;
  reason: string;
  archived_at: Timestamp;
  restored_at: Timestamp | null;
}

/** One-API channels tschk disabled itself: the only ones it may enable again. */
export interface OneApiDisabledChannelsTable {
  oneapi_database: string;
  channel_id: number;
  provider_name: string;
  reason: string;
  disabled_at: Timestamp;
}

/** One row per job ('run', 'trim'): who holds it, until when, and for what. */
export interface RunLeasesTable {
  name: string;
  holder: string | null;
  host: string | null;
  pid: number | null;
  run_id: number | null;
  trigger: RunTrigger | null;
  provider: string | null;
  pool: string | null;
  forced: number;
  force_prune: number;
  acquired_at: Timestamp | null;
  expires_at: Timestamp | null;
  last_tick: Timestamp | null;
  /** JSON of the TokenMatch a bulk re-check is limited to; null for a run of its whole scope. */
  selection: string | null;
}

/** A run's outcome for one provider, written when the run closes. */
export interface CheckRunProvidersTable {
  run_id: number;
  provider_id: number;
  provider_name: string;
  checked: number;
  live: number;
  dead: number;
  exhausted: number;
  unknown: number;
  pruned: number;
  held: number;
  unreachable: number;
  unreliable: number;
  held_reason: string | null;
  error: string | null;
}

/** The `tschk serve` processes using this database, each seen within a few lease renewals. */
export interface DaemonsTable {
  holder: string;
  host: string;
  pid: number;
  started_at: Timestamp;
  seen_at: Timestamp;
}

/** A signed-in console session; `id` is HMAC(API secret, cookie value), never the cookie itself. */
export interface ConsoleSessionsTable {
  id: string;
  client: string;
  created_at: Timestamp;
  expires_at: Timestamp;
}

export interface Database {
  providers: ProvidersTable;
  tokens: TokensTable;
  token_status: TokenStatusView;
  history_checks: HistoryChecksTable;
  history_tokens: HistoryTokensTable;
  history_reasons: HistoryReasonsTable;
  history_state: HistoryStateTable;
  token_daily: TokenDailyTable;
  token_events: TokenEventsTable;
  check_runs: CheckRunsTable;
  token_archive: TokenArchiveTable;
  oneapi_disabled_channels: OneApiDisabledChannelsTable;
  run_leases: RunLeasesTable;
  check_run_providers: CheckRunProvidersTable;
  daemons: DaemonsTable;
  console_sessions: ConsoleSessionsTable;
}

export type ProviderRow = Selectable<ProvidersTable>;
export type TokenRow = Selectable<TokensTable>;
export type TokenStatusRow = Selectable<TokenStatusTable>;
export type TokenEventRow = Selectable<TokenEventsTable>;
export type TokenDailyRow = Selectable<TokenDailyTable>;
export type CheckRunRow = Selectable<CheckRunsTable>;
export type ArchiveRow = Selectable<TokenArchiveTable>;
