import type { SourceContext } from '../context.js';
import type { Config } from '../config.js';
import { syncDeclaredProviders } from './declared.js';
import { tokenFiles } from './legacy-files.js';
import { oneApiChannels } from './oneapi/index.js';
import type { Source, SyncScope } from './types.js';

export type { SourceContext } from '../context.js';

/** Every place tokens live outside tschk's own table, in the order a sync reads them. */
const SOURCES: readonly Source[] = [tokenFiles, oneApiChannels];

/** The source a token came from, when this process reads it; undefined: its row is all there is. */
export function sourceOf(config: Readonly<Config>, name: string | null): Source | undefined {
  const source = SOURCES.find((s) => s.name === name);
  return source?.configured(config) ? source : undefined;
}

/** The sources this process reads. */
export function configuredSources(config: Readonly<Config>): Source[] {
  return SOURCES.filter((s) => s.configured(config));
}

/**
 * Step 1 of a run, and of every legacy request: bring every place tokens live in (the
 * environment, legacy files, One-API channels) into `providers` and `tokens`. A source that
 * cannot be read is logged and skipped: its tokens keep their last known list.
 */
export async function syncSources(ctx: SourceContext, scope: SyncScope = {}): Promise<void> {
  await syncDeclaredProviders(ctx.db, ctx.config);
  for (const source of configuredSources(ctx.config)) await source.sync(ctx, scope);
}
