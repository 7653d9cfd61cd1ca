import type { Provider } from '../db/providers.js';
import type { TokenRow } from '../db/schema.js';
import { archiveAndDeleteTokens } from '../db/tokens.js';
import type { Logger } from '../logger.js';
import type { SourceContext } from '../context.js';
import { deleteFromTokenFiles } from './legacy-files.js';
import { deleteFromOneApi } from './oneapi/index.js';

/**
 * Tokens leave tschk and the place they came from: own rows are archived and deleted, file lines
 * and One-API keys are edited, all archived with `reason` in the transaction that removes them.
 * Returns the tokens still at their source: a file or key edited meanwhile, or a New-API
 * multi-key channel that holds them (those are flagged `invalid`, never rewritten).
 */
export async function removeFromSources(
  ctx: SourceContext,
  provider: Provider,
  tokens: readonly TokenRow[],
  reason: string,
  log: Logger,
  now = new Date(),
): Promise<TokenRow[]> {
  const inOneApi = (t: TokenRow) => t.source === 'oneapi' && ctx.config.oneApi !== undefined;
  await archiveAndDeleteTokens(
    ctx.db,
    tokens.filter((t) => t.source !== 'file' && !inOneApi(t)),
    provider.name,
    reason,
  );
  const logged = { ...ctx, logger: log };
  const kept = await deleteFromTokenFiles(logged, provider, tokens.filter((t) => t.source === 'file'), reason, now);
  const oneapi = tokens.filter(inOneApi);
  if (oneapi.length > 0) kept.push(...(await deleteFromOneApi(logged, provider, oneapi, reason, now)));
  return kept;
}
