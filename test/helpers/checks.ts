import type { CheckRecord } from '../../src/db/history.js';

/** A live check of an active token that leaves its state as it was; `over` changes any field. */
export function liveCheck(token: { id: number; fingerprint: string }, providerId: number, over: Partial<CheckRecord> = {}): CheckRecord {
  return {
    runId: null,
    tokenId: token.id,
    providerId,
    fingerprint: token.fingerprint,
    checkedAt: new Date(),
    verdict: 'live',
    reason: 'upstream_accepted',
    httpStatus: 200,
    latencyMs: 12,
    balance: null,
    currency: null,
    detail: null,
    prev: { state: 'active', consecutiveDead: 0 },
    next: { state: 'active', consecutiveDead: 0, invalidSince: undefined },
    ...over,
  };
}
