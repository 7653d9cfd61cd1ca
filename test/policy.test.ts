import { describe, expect, it } from 'vitest';
import { backoffDelay, judgeAnswer, nextTokenState } from '../src/engine/policy.js';
import { retryAfterSeconds } from '../src/checkers/http.js';
import type { TokenState, Verdict } from '../src/db/schema.js';

const policy = { pruneAfter: 2, recover: true };

describe('nextTokenState', () => {
  it.each<[TokenState, number, Verdict, TokenState, number, string]>([
    ['active', 0, 'live', 'active', 0, ''],
    ['active', 0, 'dead', 'suspect', 1, 'becameSuspect'],
    ['suspect', 1, 'dead', 'suspect', 2, 'confirmedDead'],
    ['suspect', 3, 'dead', 'suspect', 4, 'confirmedDead'],
    ['suspect', 1, 'live', 'active', 0, ''],
    ['suspect', 1, 'exhausted', 'active', 0, ''],
    ['suspect', 1, 'unknown', 'suspect', 1, ''],
    ['active', 0, 'unknown', 'active', 0, ''],
    ['invalid', 2, 'live', 'active', 0, 'recovered'],
    ['invalid', 2, 'dead', 'invalid', 3, ''],
    ['invalid', 2, 'unknown', 'invalid', 2, ''],
    ['invalid', 2, 'exhausted', 'invalid', 0, ''],
  ])('%s (%i dead) + %s → %s (%i) %s', (state, dead, verdict, nextState, nextDead, flag) => {
    const t = nextTokenState({ state, consecutiveDead: dead }, verdict, policy);
    expect([t.state, t.consecutiveDead]).toEqual([nextState, nextDead]);
    expect({ becameSuspect: t.becameSuspect, confirmedDead: t.confirmedDead, recovered: t.recovered }).toEqual({
      becameSuspect: flag === 'becameSuspect',
      confirmedDead: flag === 'confirmedDead',
      recovered: flag === 'recovered',
    });
  });

  it('confirms at the first dead when the threshold is 1', () => {
    expect(nextTokenState({ state: 'active', consecutiveDead: 0 }, 'dead', { pruneAfter: 1, recover: true }).confirmedDead).toBe(true);
  });

  it('keeps a flagged token flagged when recovery is off', () => {
    expect(nextTokenState({ state: 'invalid', consecutiveDead: 2 }, 'live', { pruneAfter: 2, recover: false })).toMatchObject({
      state: 'invalid',
      consecutiveDead: 0,
      recovered: false,
    });
  });

  it('clears invalid_since on recovery only', () => {
    expect(nextTokenState({ state: 'invalid', consecutiveDead: 2 }, 'live', policy).invalidSince).toBeNull();
    expect(nextTokenState({ state: 'suspect', consecutiveDead: 1 }, 'dead', policy).invalidSince).toBeUndefined();
  });
});

describe('judgeAnswer', () => {
  const trusted = { unreliable: false, forcePrune: false };
  const unreliable = { unreliable: true, forcePrune: false };
  const suspect = { expect: null, state: 'suspect' as const, consecutiveDead: 1 };
  const dead = { verdict: 'dead' as const, reason: 'upstream_rejected' };
  const live = { verdict: 'live' as const, reason: 'upstream_accepted' };

  it('takes a trusted answer as it is and counts it for the breaker', () => {
    expect(judgeAnswer(suspect, dead, trusted, policy)).toMatchObject({
      verdict: 'dead',
      reason: 'upstream_rejected',
      transition: { state: 'suspect', consecutiveDead: 2, confirmedDead: true },
      judged: true,
      confirmed: true,
      distrusted: false,
    });
  });

  it('records a dead answer from a provider whose canary disagreed as unknown, and counts what it would have confirmed', () => {
    expect(judgeAnswer(suspect, dead, unreliable, policy)).toMatchObject({
      verdict: 'unknown',
      reason: 'provider_unreliable',
      transition: { state: 'suspect', consecutiveDead: 1, confirmedDead: false },
      judged: false,
      confirmed: false,
      distrusted: true,
    });
    // A first dead answer would only have made the token suspect: nothing distrusted to count.
    expect(judgeAnswer({ ...suspect, state: 'active', consecutiveDead: 0 }, dead, unreliable, policy)).toMatchObject({
      verdict: 'unknown',
      distrusted: false,
    });
  });

  it('lets the verdicts stand under --force-prune, even from an unreliable provider', () => {
    expect(judgeAnswer(suspect, dead, { unreliable: true, forcePrune: true }, policy)).toMatchObject({
      verdict: 'dead',
      confirmed: true,
      distrusted: false,
    });
  });

  it('never makes a canary a pruning candidate, nor counts it for the breaker', () => {
    const canary = { expect: 'dead' as const, state: 'suspect' as const, consecutiveDead: 5 };
    expect(judgeAnswer(canary, dead, trusted, policy)).toMatchObject({ verdict: 'dead', judged: false, confirmed: false });
  });

  it('does not count a flagged token for the breaker, and recovers it only from a trusted provider', () => {
    const flagged = { expect: null, state: 'invalid' as const, consecutiveDead: 2 };
    expect(judgeAnswer(flagged, live, trusted, policy)).toMatchObject({ judged: false, transition: { state: 'active', recovered: true } });
    expect(judgeAnswer(flagged, live, unreliable, policy)).toMatchObject({
      verdict: 'live',
      transition: { state: 'invalid', recovered: false },
    });
  });
});

describe('backoffDelay', () => {
  it.each([
    [0, 0, 500],
    [0, 0.999, 1000],
    [1, 0, 1000],
    [2, 0, 2000],
    [2, 0.5, 3000],
  ])('attempt %i with random %f → %i ms', (attempt, random, ms) => {
    expect(backoffDelay(attempt, 1000, () => random)).toBe(ms);
  });
});

describe('retryAfterSeconds', () => {
  const now = Date.parse('2026-11-27T10:00:00Z');
  it.each<[string | undefined, number | undefined]>([
    ['5', 5],
    [' 30 ', 30],
    ['Fri, 27 Nov 2026 10:00:10 GMT', 10],
    ['Fri, 27 Nov 2026 09:00:00 GMT', 0],
    ['soon', undefined],
    [undefined, undefined],
  ])('%s → %s', (value, seconds) => {
    expect(retryAfterSeconds(value, now)).toBe(seconds);
  });
});
