import { deepseekAccountChecker } from './deepseek-account.js';
import { deepseekKeyChecker } from './deepseek-key.js';
import { freeApiChecker } from './free-api.js';
import { moonshotKeyChecker } from './moonshot-key.js';
import { openaiCompatibleChecker } from './openai-compatible.js';
import { openrouterKeyChecker } from './openrouter-key.js';
import { stepfunKeyChecker } from './stepfun-key.js';
import type { Checker } from './types.js';

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

export function providerKinds(): string[] {
  return [...byKind.keys()].sort();
}
