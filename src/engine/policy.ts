import type { PruneMode } from '../config.js';
import type { TokenState, Verdict } from '../db/schema.js';

export interface StatePolicy {
  /** Dead verdicts in a row that confirm a token dead (TSCHK_PRUNE_AFTER). */
  pruneAfter: number;
  /** A flagged token that answers live goes back to active (TSCHK_RECOVER). */
  recover: boolean;
  /** TSCHK_PRUNE_EXHAUSTED: a credential without balance counts towards pruning like a dead one. */
  pruneExhausted?: boolean;
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
  const counted = verdict === 'exhausted' && policy.pruneExhausted ? 'dead' : verdict;
  switch (counted) {
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

/** One answer as the run records it, and what it counts for the pruning breaker. */
export interface Judgement {
  /** A distrusted dead answer is recorded as unknown, with reason `provider_unreliable`. */
  verdict: Verdict;
  reason: string;
  transition: TokenTransition;
  /** A token in rotation (not a canary, not flagged) got an answer: it counts towards the breaker's ratio. */
  judged: boolean;
  /** Confirmed dead: a pruning candidate. A canary tests the provider and is never one. */
  confirmed: boolean;
  /** Would have been confirmed dead, had a canary of its provider not disagreed this run. */
  distrusted: boolean;
}

/**
 * Pure: what one answer does to a token, given whether its provider is trusted this run (no
 * canary disagreed) and whether a human forced pruning (`--force-prune`: the verdicts stand).
 */
export function judgeAnswer(
  token: { expect: 'live' | 'dead' | null; state: TokenState; consecutiveDead: number },
  answer: { verdict: Verdict; reason: string },
  run: { unreliable: boolean; forcePrune: boolean },
  policy: StatePolicy,
): Judgement {
  const prev = { state: token.state, consecutiveDead: token.consecutiveDead };
  const inRotation = !token.expect && token.state !== 'invalid';
  let { verdict, reason } = answer;
  let distrusted = false;
  if (run.unreliable && verdict === 'dead' && !run.forcePrune) {
    distrusted = inRotation && nextTokenState(prev, 'dead', policy).confirmedDead;
    verdict = 'unknown';
    reason = 'provider_unreliable';
  }
  // Nor is a flagged token's live answer trusted from a provider whose canary disagreed.
  const transition = nextTokenState(prev, verdict, { ...policy, recover: policy.recover && !run.unreliable });
  return {
    verdict,
    reason,
    transition,
    judged: inRotation && verdict !== 'unknown',
    confirmed: transition.confirmedDead && !token.expect,
    distrusted,
  };
}

export interface PruneFacts {
  mode: PruneMode;
  /** TSCHK_PRUNE_MAX_RATIO. */
  maxRatio: number;
  /** `tschk check --force-prune`: a human looked, the safety holds do not apply. */
  forcePrune: boolean;
  /** Every check of the provider in this run was unknown. */
  unreachable: boolean;
  /** A canary disagreed with its expectation in this run. */
  unreliable: boolean;
  /**
   * Tokens in rotation (not flagged yet, not canaries) that reached TSCHK_PRUNE_AFTER in this run,
   * plus those this run did not check whose last answer was dead.
   */
  confirmed: number;
  /** Tokens in rotation that got a definite answer (live, dead, exhausted) in this run, or last time if not checked by it. */
  judged: number;
}

export type PruneDecision =
  | { action: 'none' }
  | { action: 'hold'; rule: 'canary' | 'breaker'; reason: string }
  | { action: 'flag' | 'delete'; overrode?: 'canary' | 'breaker' };

/** The breaker never holds fewer confirmations than this: two dead tokens in a pool of three are just dead. */
export const BREAKER_MIN_CONFIRMED = 3;

/**
 * Pure: what pruning may do for one provider after a run.
 * The breaker's ratio counts only tokens that got a definite answer and were in rotation: unknown
 * answers and already-flagged tokens would otherwise dilute an outage below the ratio.
 */
export function decidePruning(f: PruneFacts): PruneDecision {
  if (f.mode === 'off' || f.unreachable) return { action: 'none' };
  let hold: { rule: 'canary' | 'breaker'; reason: string } | undefined;
  if (f.unreliable) {
    hold = { rule: 'canary', reason: 'a canary disagreed with its expectation, so dead verdicts were not trusted' };
  } else if (f.confirmed >= BREAKER_MIN_CONFIRMED && f.confirmed > f.maxRatio * f.judged) {
    hold = {
      rule: 'breaker',
      reason: `${f.confirmed} of ${f.judged} answering tokens are dead, more than TSCHK_PRUNE_MAX_RATIO=${f.maxRatio}: this looks like an outage`,
    };
  }
  if (hold && !f.forcePrune) return { action: 'hold', ...hold };
  return hold ? { action: f.mode, overrode: hold.rule } : { action: f.mode };
}

/** Exponential backoff with jitter: base·2^attempt, scaled by a random factor in [0.5, 1). */
export function backoffDelay(attempt: number, baseMs: number, random: () => number = Math.random): number {
  return Math.round(baseMs * 2 ** attempt * (0.5 + random() * 0.5));
}

/** A 429 may ask for hours; a run waits at most this long before calling the check unknown. */
export const MAX_RETRY_AFTER_S = 120;
