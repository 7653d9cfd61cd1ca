import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { lowBalanceOf } from '../src/engine/low-balance.js';

describe('lowBalanceOf against TSCHK_LOW_BALANCE', () => {
  const thresholds = loadConfig({ TSCHK_LOW_BALANCE: 'CNY:5,USD:1,tokens:1000000' }).lowBalance;
  it.each([
    ['CNY below', 'live', '4.99', 'CNY', true],
    ['CNY at the threshold', 'live', '5', 'CNY', false],
    ['CNY above', 'live', '110.00', 'CNY', false],
    ['lower-case currency', 'live', '0.50', 'usd', true],
    ['tokens below', 'live', '722170', 'tokens', true],
    ['tokens above', 'live', '4722170', 'tokens', false],
    ['exhausted at zero', 'exhausted', '0.00', 'CNY', true],
    ['no threshold for EUR', 'live', '0.01', 'EUR', false],
    ['no balance read', 'live', null, null, false],
    ['a dead key has no balance to judge', 'dead', '0', 'CNY', false],
    ['an unknown answer neither', 'unknown', '0', 'CNY', false],
  ] as const)('%s', (_n, verdict, balance, currency, low) => {
    const r = lowBalanceOf({ verdict, balance, currency }, thresholds);
    expect(r !== undefined).toBe(low);
    if (low) expect(r).toEqual({ balance, currency });
  });

  it('lists nothing when TSCHK_LOW_BALANCE is not set', () => {
    expect(lowBalanceOf({ verdict: 'live', balance: '0.01', currency: 'CNY' }, loadConfig({}).lowBalance)).toBeUndefined();
  });
});
