import type { CheckResult } from '../checkers/types.js';

/** The key used in TSCHK_LOW_BALANCE for a currency: ISO codes upper-case, the token unit `tokens`. */
export function currencyKey(currency: string): string {
  return currency.toLowerCase() === 'tokens' ? 'tokens' : currency.toUpperCase();
}

/** Whether an amount is below the TSCHK_LOW_BALANCE threshold of its currency (false when none is set). */
export function isBelowThreshold(balance: string, currency: string, thresholds: ReadonlyMap<string, number>): boolean {
  const threshold = thresholds.get(currencyKey(currency));
  const amount = Number(balance);
  return threshold !== undefined && Number.isFinite(amount) && amount < threshold;
}

/**
 * The balance of a check when it is below the TSCHK_LOW_BALANCE threshold of its currency;
 * undefined when it is not, when no threshold is set for it, or when the check read no balance.
 */
export function lowBalanceOf(
  result: Pick<CheckResult, 'verdict' | 'balance' | 'currency'>,
  thresholds: ReadonlyMap<string, number>,
): { balance: string; currency: string } | undefined {
  if (result.verdict !== 'live' && result.verdict !== 'exhausted') return undefined;
  const { balance, currency } = result;
  if (balance === null || balance === undefined || currency === null || currency === undefined) return undefined;
  return isBelowThreshold(balance, currency, thresholds) ? { balance, currency } : undefined;
}
