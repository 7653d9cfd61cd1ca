import type { Migration } from 'kysely';
import * as initial from './20261127000000_initial.js';
import * as oneApiDisabledChannels from './20261128000000_oneapi_disabled_channels.js';
import * as tokensDueIndex from './20261129000000_tokens_due_index.js';
import * as runLease from './20261202000000_run_lease.js';
import * as console_ from './20261203000000_console.js';
import * as historyLayout from './20261204000000_history_layout.js';

/** Every migration, by name; names sort in the order they run. */
export const migrations: Record<string, Migration> = {
  '20261127000000_initial': initial,
  '20261128000000_oneapi_disabled_channels': oneApiDisabledChannels,
  '20261129000000_tokens_due_index': tokensDueIndex,
  '20261202000000_run_lease': runLease,
  '20261203000000_console': console_,
  '20261204000000_history_layout': historyLayout,
};
