import { createDeepseekAccountChecker } from './deepseek-account.js';
import { deepseekKeyChecker } from './deepseek-key.js';
import { freeApiChecker } from './free-api.js';
import { moonshotKeyChecker } from './moonshot-key.js';
import { openaiCompatibleChecker } from './openai-compatible.js';
import { openrouterKeyChecker } from './openrouter-key.js';
import { stepfunKeyChecker } from './stepfun-key.js';
import { fingerprint, scrubSecret } from '../secret.js';
import type { CheckContext, Checker, CheckResult, CheckTarget } from './types.js';

/** A checker for every provider kind tschk can check, by kind; a provider's `kind` picks one. */
export type CheckerRegistry = ReadonlyMap<string, Checker>;

/**
 * A new set of checkers. The DeepSeek account checker keeps sessions and failed logins in memory:
 * they belong to the set, so the daemon makes one for its life and they go with it.
 */
export function createCheckers(): CheckerRegistry {
  const checkers: Checker[] = [
    freeApiChecker,
    deepseekKeyChecker,
    createDeepseekAccountChecker(),
    moonshotKeyChecker,
    stepfunKeyChecker,
    openrouterKeyChecker,
    openaiCompatibleChecker,
  ];
  return new Map(checkers.map((c) => [c.kind, c]));
}

/** The checker of a kind in `checkers`. */
export function checkerFor(kind: string, checkers: CheckerRegistry): Checker | undefined {
  return checkers.get(kind);
}

let described: CheckerRegistry | undefined;

/**
 * What a kind requires, the same in every set: read from a set of its own that never checks, so
 * that no session of it is shared. Undefined for a kind tschk does not know.
 */
export function kindRequirements(kind: string): Pick<Checker, 'requiresUrl' | 'wholeEntries'> | undefined {
  return (described ??= createCheckers()).get(kind);
}

/**
 * A check that never throws: a checker throws only on a bug, and the token must not pay for it,
 * so a throw is logged (its text scrubbed of the secret) and answered `unknown`.
 */
export async function checkSafely(checker: Checker, secret: string, target: CheckTarget, ctx: CheckContext): Promise<CheckResult> {
  try {
    return await checker.check(secret, target, ctx);
  } catch (err) {
    ctx.logger.error(
      { provider: target.providerName, fingerprint: fingerprint(secret), err: scrubSecret(String(err), secret) },
      'checker failed',
    );
    return { verdict: 'unknown', reason: 'checker_error', httpStatus: null, latencyMs: 0, detail: null };
  }
}

export function providerKinds(): string[] {
  return [...(described ??= createCheckers()).keys()].sort();
}
