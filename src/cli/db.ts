import type { Config } from '../config.js';
import { openDatabase, type Db } from '../db/connect.js';
import { migrateToLatest } from '../db/migrate.js';
import { findProvider, type Provider } from '../db/providers.js';
import { syncDeclaredProviders } from '../sources/declared.js';
import { UsageError } from './common.js';

export async function withDb(config: Readonly<Config>, fn: (db: Db) => Promise<number>): Promise<number> {
  const db = openDatabase(config.database.url);
  try {
    await migrateToLatest(db);
    // `tokens import --provider deep` works as soon as TokenStatuCheckUrls__Deep… is set, before any `serve`.
    await syncDeclaredProviders(db, config);
    return await fn(db);
  } finally {
    await db.close();
  }
}

export async function requireProvider(db: Db, name: string | undefined): Promise<Provider> {
  if (!name) throw new UsageError('--provider is required');
  const p = await findProvider(db, name);
  if (!p) throw new UsageError(`unknown provider '${name}'; see tschk providers list`);
  return p;
}
