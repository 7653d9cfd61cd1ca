import { setFlagsFromString } from 'node:v8';

/**
 * How far V8's old generation may grow past what the last full GC left live, in per cent. V8
 * picks up to 300 on a machine with memory to spare: a 200 000-token run, ~14 MB live, let
 * garbage build up to 60-80 MB before each full GC (docs/memory.md).
 */
export const HEAP_GROWING_PERCENT = 100;

/** Whether tschk sets the growth itself: `node --heap-growing-percent=N` wins (NODE_OPTIONS may not carry it). */
export function setsHeapGrowth(execArgv: readonly string[]): boolean {
  return !execArgv.some((a) => /^--heap[-_]growing[-_]percent\b/.test(a));
}

/** V8 reads the flag at each full GC, so setting it once the process runs is enough. */
export function limitHeapGrowth(execArgv: readonly string[]): void {
  if (setsHeapGrowth(execArgv)) setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}
