/** The shapes of the console's JSON answers (see src/console/queries.ts). */
export type Verdict = 'live' | 'dead' | 'exhausted' | 'unknown';
export type State = 'active' | 'suspect' | 'invalid' | 'disabled';

export interface Run {
  id: number;
  trigger: string;
  scope: string;
  status: 'running' | 'done' | 'failed' | 'aborted';
  started_at: string | null;
  finished_at: string | null;
  checked: number;
  live: number;
  dead: number;
  exhausted: number;
  unknown: number;
  pruned: number;
  held: number;
  error: string | null;
  progress?: { checked: number; total: number };
}

export interface PoolCard {
  provider: string;
  provider_kind: string;
  provider_enabled: boolean;
  pool: string;
  tokens: number;
  canaries: number;
  states: Record<State, number>;
  verdicts: Record<Verdict | 'unchecked', number>;
  live_share: number | null;
  last_checked_at: string | null;
  low_balance: number;
}

export type Warning =
  | { kind: 'held'; provider: string; run_id: number; held: number; reason: string }
  | { kind: 'unreachable'; provider: string; run_id: number }
  | { kind: 'canary'; provider: string; run_id: number }
  | { kind: 'provider_error'; provider: string; run_id: number; error: string }
  | { kind: 'low_balance'; provider: string; pool: string; tokens: number }
  | { kind: 'run_failed'; run_id: number; status: string; error: string | null };

export interface Overview {
  pools: PoolCard[];
  warnings: Warning[];
  last_run: Run | null;
  running: Run | null;
  next_run_at: string | null;
  cron: string;
  prune: { mode: string; after: number };
}

export interface DayShare {
  day: string;
  checks: number;
  live: number;
  share: number | null;
}

export interface CheckBrief {
  verdict: Verdict;
  reason: string;
  checked_at: string | null;
  http_status: number | null;
  latency_ms: number | null;
  run_id: number | null;
}

export interface Token {
  id: number;
  provider: string | null;
  pool: string;
  mask: string;
  fingerprint: string;
  label: string | null;
  source: string;
  expect: 'live' | 'dead' | null;
  state: State;
  consecutive_dead: number;
  last_verdict: Verdict | null;
  last_reason: string | null;
  last_checked_at: string | null;
  last_live_at: string | null;
  invalid_since: string | null;
  balance: string | null;
  currency: string | null;
  created_at: string | null;
}

export interface PoolRow extends Token {
  last_http_status: number | null;
  last_latency_ms: number | null;
  checks: CheckBrief[];
}

export interface PoolPage {
  provider: string;
  pool: string;
  page: number;
  size: number;
  total: number;
  tokens: PoolRow[];
  reasons: Array<{ reason: string; tokens: number }>;
}

export interface HistoryRow {
  id: number;
  run_id: number | null;
  checked_at: string | null;
  verdict: Verdict;
  reason: string;
  http_status: number | null;
  latency_ms: number | null;
  balance: string | null;
  currency: string | null;
  detail: string | null;
}

export interface TokenEvent {
  kind: 'suspect' | 'invalid' | 'recovered' | 'held' | 'pruned' | 'removed' | 'restored' | 'channel_disabled' | 'channel_enabled';
  at: string | null;
  run_id: number | null;
  reason: string | null;
  actor: 'run' | 'console' | 'api' | 'cli' | null;
}

export interface TokenDay {
  day: string;
  checks: number;
  live: number;
  dead: number;
  exhausted: number;
  unknown: number;
  latency_min: number | null;
  latency_avg: number | null;
  latency_max: number | null;
  last_reason: string | null;
  last_balance: string | null;
}

export interface ArchiveEntry {
  id: number;
  token_id: number | null;
  provider: string;
  pool: string;
  mask: string;
  fingerprint: string;
  label: string | null;
  reason: string;
  last_verdict: string | null;
  last_reason: string | null;
  archived_at: string | null;
  restored_at: string | null;
}

export interface TokenPage {
  token: Token | null;
  archived: Omit<ArchiveEntry, 'token_id'> | null;
  checks: HistoryRow[];
  days: TokenDay[];
  events: TokenEvent[];
}

export interface TokenBrief {
  id: number;
  pool: string | null;
  mask: string | null;
  fingerprint: string;
}

export interface RunDetail {
  run: Run;
  providers: Array<{
    provider: string;
    checked: number;
    live: number;
    dead: number;
    exhausted: number;
    unknown: number;
    pruned: number;
    held: number;
    unreachable: boolean;
    unreliable: boolean;
    held_reason: string | null;
    error: string | null;
  }>;
  changes: Record<'became_suspect' | 'confirmed_dead' | 'recovered' | 'pruned', { count: number; tokens: TokenBrief[] }>;
}

export interface Held {
  provider: string;
  run_id: number | null;
  held_reason: string | null;
  count: number;
  tokens: Array<{ id: number; pool: string; mask: string; fingerprint: string; label: string | null }>;
}
