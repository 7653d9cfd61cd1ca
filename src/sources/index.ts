import type { Config } from '../config.js';
import type { Db } from '../db/connect.js';
import type { Logger } from '../logger.js';
import { syncDeclaredProviders } from './declared.js';

export interface SourceContext {
  db: Db;
  config: Readonly<Config>;
  logger: Logger;
}

/**
 * Step 1 of a run, and of every legacy request: bring every place tokens live in (the
 * environment, legacy files, One-API channels) into `providers` and `tokens`.
 */
export async function syncSources(ctx: SourceContext, scope: { provider?: string; pool?: string } = {}): Promise<void> {
  void scope;
  await syncDeclaredProviders(ctx.db, ctx.config);
}
