import type { Config } from '../config.js';
import type { Db } from '../db/connect.js';
import { upsertProvider } from '../db/providers.js';

/** Providers declared in the environment (the original's `TokenStatuCheckUrls__*`) exist in `providers`. */
export async function syncDeclaredProviders(db: Db, config: Readonly<Config>): Promise<void> {
  for (const p of config.legacyProviders) {
    await upsertProvider(db, { name: p.name, kind: 'free-api', checkUrl: p.checkUrl });
  }
}
