import type { Holder } from '../db/lease.js';
import type { Provider } from '../db/providers.js';
import type { RunCounts } from '../db/runs.js';
import type { RunStatus, RunTrigger, Verdict } from '../db/schema.js';
import type { TokenMatch } from '../db/tokens.js';

/*
 * The engine's vocabulary: what a run is asked, what it tells, and what the rest of tschk may do
 * with runs. The code that makes runs (run.ts, prune.ts, coordinator.ts) imports these; nothing
 * here imports it back.
 */

/** Observers of a run (metrics, notifications); they must not throw. */
export interface EngineEvents {
  checked?(provider: Provider, verdict: Verdict, latencyMs: number): void;
  runFinished?(summary: RunSummary): void | Promise<void>;
}

export interface RunRequest {
  trigger: RunTrigger;
  provider?: string;
  pool?: string;
  /** Ignore TSCHK_MIN_INTERVAL_S. */
  force?: boolean;
  /** Prune even when a safety rule would hold (a human looked); checks every token again, like `force`. */
  forcePrune?: boolean;
  /** Only the pool's tokens matching this (a bulk re-check); canaries are asked as in any run. */
  selection?: TokenMatch;
  /** The cron tick that asked for the run: of all processes on the database, one runs each tick. */
  tick?: Date;
}

export interface RunOptions {
  /** Learns the run's id as soon as its row exists (the HTTP API answers 202 with it). */
  onRunOpened?: (runId: number) => void;
  /** The run lease this run holds: its history is written only while the lease is held. */
  lease?: { holderId: string; ttlMs: number };
}

export interface TokenRef {
  id: number;
  pool: string;
  mask: string;
  fingerprint: string;
}

export interface ProviderRunSummary extends RunCounts {
  provider: string;
  kind: string;
  durationMs: number;
  /** Every check of the run was unknown: the provider, not its tokens, is in trouble. */
  unreachable: boolean;
  /** A canary disagreed with its expectation: dead verdicts were not trusted. */
  unreliable: boolean;
  medianLatencyMs: number | null;
  becameSuspect: TokenRef[];
  confirmedDead: TokenRef[];
  recovered: TokenRef[];
  /** Flagged invalid or deleted this run (listed up to a cap, like the lists above). */
  prunedTokens: TokenRef[];
  /** Why pruning was held for this provider (breaker, canary), when it was. */
  heldReason?: string;
  /** Keys whose balance fell below TSCHK_LOW_BALANCE. */
  lowBalance: Array<TokenRef & { balance: string; currency: string }>;
  error?: string;
}

export interface RunSummary extends RunCounts {
  runId: number;
  trigger: RunTrigger;
  scope: string;
  status: Exclude<RunStatus, 'running'>;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  providers: ProviderRunSummary[];
  error?: string;
}

/** What one run learnt about a provider's tokens in rotation (not flagged, not canaries). */
export interface RunTally {
  /** Reached TSCHK_PRUNE_AFTER in this run. */
  confirmed: number;
  /** Got a definite answer (live, dead, exhausted). */
  judged: number;
  /** Would have been confirmed, had a canary not made their dead verdicts untrustworthy. */
  distrusted: number;
}

export interface StartedRun {
  runId: Promise<number>;
  summary: Promise<RunSummary>;
}

/** The run another process holds the lease for. */
export interface HeldRun {
  runId: number | null;
  host: string | null;
  pid: number | null;
  since: Date | null;
  scope: RunRequest;
}

export interface StartOptions {
  /** A run held by another process that does not cover the request: wait for it (default), or refuse. */
  whenBusy?: 'wait' | 'refuse';
  /** Told once when the request waits for another process's run (to join it, or for it to end). */
  onWait?: (held: HeldRun) => void;
}

export interface LeaseSettings {
  holder: Holder;
  ttlMs: number;
  /** How often a waiting process asks the database again. */
  pollMs: number;
}

/** What the HTTP server and the daemon may do with runs (the RunCoordinator is one). */
export interface RunControl {
  readonly lease: LeaseSettings;
  /** A run of this process is in flight or queued. */
  readonly busy: boolean;
  /** Resolves when every run requested so far has finished. */
  idle(): Promise<void>;
  request(req: RunRequest, opts?: StartOptions): Promise<RunSummary>;
  /** Like `request`, and also tells the id of the run that will answer it, once its row exists. */
  start(req: RunRequest, opts?: StartOptions): StartedRun;
}
