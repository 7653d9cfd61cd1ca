// The history writer: a full buffer is written before `add` returns (backpressure), so a run's
// memory stays flat; what is left is written on `flush`/`close`, and on the interval.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase, type Db } from '../src/db/connect.js';
import { listHistory, type CheckRecord } from '../src/db/history.js';
import { migrateToLatest } from '../src/db/migrate.js';
import { upsertProvider } from '../src/db/providers.js';
import { importTokens, listTokens } from '../src/db/tokens.js';
import { BatchWriter } from '../src/engine/writer.js';
import { freshDatabaseUrl } from './helpers/databases.js';
import { waitFor } from './helpers/wait.js';
import { liveCheck } from './helpers/checks.js';

describe('BatchWriter', () => {
  let database: { url: string; drop: () => Promise<void> };
  let db: Db;
  let record: CheckRecord;
  beforeEach(async () => {
    database = await freshDatabaseUrl('sqlite');
    db = openDatabase(database.url);
    await migrateToLatest(db);
    const p = await upsertProvider(db, { name: 'deep', kind: 'free-api', checkUrl: 'http://127.0.0.1:9/token/check' });
    await importTokens(db, { providerId: p.id, pool: 'default', entries: ['writer-token-0001'], source: 'cli' });
    const [t] = await listTokens(db, {});
    record = liveCheck(t!, p.id);
  });
  afterEach(async () => {
    await db.close();
    await database.drop();
  });

  it('writes a full batch before add() returns, and keeps the rest until flush', async () => {
    // Read through another connection: this one would queue the read behind the write.
    const reader = openDatabase(database.url);
    try {
      const writer = new BatchWriter(db, {}, 2, 60_000);
      await writer.add(record);
      await writer.add(record);
      expect(await listHistory(reader, { limit: 10 })).toHaveLength(2);
      await writer.add(record);
      expect(await listHistory(reader, { limit: 10 })).toHaveLength(2);
      await writer.close();
      expect(await listHistory(reader, { limit: 10 })).toHaveLength(3);
    } finally {
      await reader.close();
    }
  });

  it('writes what it holds on its interval, without a flush', async () => {
    const writer = new BatchWriter(db, {}, 500, 10);
    try {
      await writer.add(record);
      await waitFor(async () => (await listHistory(db, { limit: 10 })).length === 1, 2_000, 'the interval flush');
    } finally {
      await writer.close();
    }
  });
});
