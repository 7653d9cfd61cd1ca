import { describe, expect, it } from 'vitest';
import { setsHeapGrowth } from '../src/heap.js';

describe('setsHeapGrowth', () => {
  it.each<[string[], boolean]>([
    [[], true],
    [['--enable-source-maps', '--max-old-space-size=512'], true],
    [['--heap-growing-percent=50'], false],
    [['--max-old-space-size=512', '--heap_growing_percent=300'], false],
  ])('node %j → tschk sets the growth: %s', (execArgv, sets) => {
    expect(setsHeapGrowth(execArgv)).toBe(sets);
  });
});
