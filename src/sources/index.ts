import type { SourceContext } from '../context.js';
import { syncDeclaredProviders } from './declared.js';
import { syncLegacyFiles } from './legacy-files.js';
import { syncOneApi } from './oneapi/index.js';

export type { SourceContext } from '../context.js';

/**
 * Step 1 of a run, and of every legacy request: bring every place tokens live in (the
 * environment, legacy files, One-API channels) into `providers` and `tokens`. A source that
 * cannot be read is logged and skipped: its tokens keep their last known list.
 */
export async function syncSources(ctx: SourceContext, scope: { provider?: string; pool?: string } = {}): Promise<void> {
  await syncDeclaredProviders(ctx.db, ctx.config);
  await syncLegacyFiles(ctx, scope);
  await syncOneApi(ctx, scope).catch((err: unknown) => {
    const message = err instanceof Error ? err.message : String(err);
    ctx.logger.error({ err: message }, 'One-API channels could not be synced; their tokens keep their last known list');
  });
}
