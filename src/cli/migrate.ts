import { migrateToLatest } from '../db/migrate.js';
import { args, print, type Command } from './common.js';
import { withDb } from './db.js';

export const migrateCommand: Command = async (config, rest, io) => {
  args(rest, {});
  return await withDb(config, async (db) => {
    const applied = await migrateToLatest(db);
    return print(io, applied.length ? `applied: ${applied.join(', ')}` : 'database is up to date');
  });
};
