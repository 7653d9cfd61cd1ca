import type { Config } from '../config.js';
import type { Db } from '../db/connect.js';
import type { Clock } from '../engine/limits.js';
import type { Logger } from '../logger.js';
import { syncDeclaredProviders } from './declared.js';
import { syncLegacyFiles } from './legacy-files.js';
import { syncOneApi } from './oneapi/index.js';

export interface SourceContext {
  db: Db;
  config: Readonly<Config>;
  logger: Logger;
  /** The wait before reading again a token file that read empty; the real clock unless a test brings one. */
  clock?: Clock;
}

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
