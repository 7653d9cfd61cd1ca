import { deepseekAccountChecker } from './deepseek-account.js';
import { deepseekKeyChecker } from './deepseek-key.js';
import { freeApiChecker } from './free-api.js';
import { moonshotKeyChecker } from './moonshot-key.js';
import { openaiCompatibleChecker } from './openai-compatible.js';
import { openrouterKeyChecker } from './openrouter-key.js';
import { stepfunKeyChecker } from './stepfun-key.js';
import { fingerprint, scrubSecret } from '../secret.js';
import type { CheckContext, Checker, CheckResult, CheckTarget } from './types.js';

/** Every provider kind tschk can check; a provider's `kind` picks one. */
const CHECKERS: readonly Checker[] = [
  freeApiChecker,
  deepseekKeyChecker,
  deepseekAccountChecker,
  moonshotKeyChecker,
  stepfunKeyChecker,
  openrouterKeyChecker,
  openaiCompatibleChecker,
];

const byKind = new Map(CHECKERS.map((c) => [c.kind, c]));

export function checkerFor(kind: string): Checker | undefined {
  return byKind.get(kind);
}

/**
 * A check that never throws: a checker throws only on a bug, and the token must not pay for it,
 * so a throw is logged (its text scrubbed of the secret) and answered `unknown`.
 */
export async function checkSafely(checker: Checker, secret: string, target: CheckTarget, ctx: CheckContext): Promise<CheckResult> {
  try {
    return await checker.check(secret, target, ctx);
  } catch (err) {
    ctx.logger.error({ provider: target.providerName, fingerprint: fingerprint(secret), err: scrubSecret(String(err), secret) }, 'checker failed');
    return { verdict: 'unknown', reason: 'checker_error', httpStatus: null, latencyMs: 0, detail: null };
  }
}

export function providerKinds(): string[] {
  return [...byKind.keys()].sort();
}
