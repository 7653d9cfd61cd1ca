import { freeApiChecker } from './free-api.js';
import type { Checker } from './types.js';

/** Every provider kind tschk can check; a provider's `kind` picks one. */
const CHECKERS: readonly Checker[] = [freeApiChecker];

const byKind = new Map(CHECKERS.map((c) => [c.kind, c]));

export function checkerFor(kind: string): Checker | undefined {
  return byKind.get(kind);
}

export function providerKinds(): string[] {
  return [...byKind.keys()].sort();
}
