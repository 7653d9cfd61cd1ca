import type { TokenState, Verdict } from '../db/schema.js';

export interface StatePolicy {
  /** Dead verdicts in a row that confirm a token dead (TSCHK_PRUNE_AFTER). */
  pruneAfter: number;
  /** A flagged token that answers live goes back to active (TSCHK_RECOVER). */
  recover: boolean;
}

export interface TokenTransition {
  state: TokenState;
  consecutiveDead: number;
  /** undefined: unchanged; null: cleared. */
  invalidSince: Date | null | undefined;
  /** active → suspect in this check. */
  becameSuspect: boolean;
  /** Reached the confirmation threshold: a pruning candidate (subject to the run's safety rules). */
  confirmedDead: boolean;
  /** invalid → active in this check. */
  recovered: boolean;
}

/**
 * Pure: a token's next state after one verdict.
 * dead counts up, live/exhausted reset the count, unknown changes nothing at all.
 * `invalid` is only ever entered by the pruning step, never here.
 */
export function nextTokenState(
  prev: { state: TokenState; consecutiveDead: number },
  verdict: Verdict,
  policy: StatePolicy,
): TokenTransition {
  const same = { state: prev.state, consecutiveDead: prev.consecutiveDead, invalidSince: undefined };
  const none = { becameSuspect: false, confirmedDead: false, recovered: false };
  switch (verdict) {
    case 'unknown':
      return { ...same, ...none };
    case 'dead': {
      const consecutiveDead = prev.consecutiveDead + 1;
      const state = prev.state === 'active' ? 'suspect' : prev.state;
      return {
        state,
        consecutiveDead,
        invalidSince: undefined,
        becameSuspect: prev.state === 'active',
        confirmedDead: consecutiveDead >= policy.pruneAfter && state !== 'invalid',
        recovered: false,
      };
    }
    case 'live':
    case 'exhausted': {
      if (prev.state === 'invalid') {
        const recovered = verdict === 'live' && policy.recover;
        return recovered
          ? { state: 'active', consecutiveDead: 0, invalidSince: null, ...none, recovered: true }
          : { ...same, consecutiveDead: 0, ...none };
      }
      return { state: prev.state === 'suspect' ? 'active' : prev.state, consecutiveDead: 0, invalidSince: undefined, ...none };
    }
  }
}

/** Exponential backoff with jitter: base·2^attempt, scaled by a random factor in [0.5, 1). */
export function backoffDelay(attempt: number, baseMs: number, random: () => number = Math.random): number {
  return Math.round(baseMs * 2 ** attempt * (0.5 + random() * 0.5));
}

/** A 429 may ask for hours; a run waits at most this long before calling the check unknown. */
export const MAX_RETRY_AFTER_S = 120;
