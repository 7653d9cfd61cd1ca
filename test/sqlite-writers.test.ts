// Two processes writing one SQLite file: the daemon, and a CLI command an admin runs beside it.
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../src/db/connect.js';
import { upsertProvider } from '../src/db/providers.js';
import { listTokens } from '../src/db/tokens.js';
import { freshDatabaseUrl, type TestDatabase } from './helpers/databases.js';
import { API_SECRET } from './helpers/http.js';
import { spawnTschk, startTschk } from './helpers/spawn.js';

const TOKENS = 20_000;

describe('a CLI command beside a serving daemon on one SQLite file', () => {
  let database: TestDatabase;
  beforeEach(async () => {
    database = await freshDatabaseUrl('sqlite');
    const db = openDatabase(database.url);
    try {
      await upsertProvider(db, { name: 'deep', kind: 'free-api', checkUrl: 'http://127.0.0.1:9/token/check' });
    } finally {
      await db.close();
    }
  });
  afterEach(() => database.drop());

  it('a transaction that has read still writes after another connection tried to: it took the write lock at its BEGIN', async () => {
    const db = openDatabase(database.url);
    // Another process's connection, which does not wait for a lock: it is told SQLITE_BUSY at once.
    const other = new BetterSqlite3(database.url.slice('sqlite:'.length));
    other.pragma('busy_timeout = 0');
    try {
      let refused: unknown;
      await db.kysely.transaction().execute(async (trx) => {
        await trx.selectFrom('providers').select('id').execute();
        try {
          other.prepare('UPDATE providers SET concurrency = 7').run();
        } catch (err) {
          refused = err;
        }
        await trx.updateTable('providers').set({ concurrency: 2 }).execute();
      });

      expect(refused).toMatchObject({ code: 'SQLITE_BUSY' });
      expect(other.prepare('SELECT concurrency FROM providers').all()).toEqual([{ concurrency: 2 }]);
    } finally {
      other.close();
      await db.close();
    }
  });

  it('imports tokens while the daemon writes all the while, instead of failing with "database is locked"', async () => {
    const env = { TSCHK_DATABASE_URL: database.url };
    // A lease of 200 ms: the daemon notes that it is alive every 66 ms, a write each time.
    const daemon = startTschk(['serve'], {
      ...env,
      TSCHK_HTTP_HOST: '127.0.0.1',
      TSCHK_HTTP_PORT: '0',
      TSCHK_RUN_ON_START: 'false',
      TSCHK_RUN_LEASE_MS: '200',
      UserAuthorization: API_SECRET,
      LOG_LEVEL: 'info',
    });
    await daemon.waitForLog((l) => l.msg === 'HTTP listening', 20_000);
    const file = join(dirname(database.url.slice('sqlite:'.length)), 'tokens.txt');
    // The import reads the pool, then spends a moment on fingerprints before it writes: the
    // daemon writes in between.
    writeFileSync(file, Array.from({ length: TOKENS }, (_, i) => `tok-beside-${String(i).padStart(6, '0')}-abcdefghij\n`).join(''));
    try {
      const imported = await spawnTschk(['tokens', 'import', '--provider', 'deep', file], env);

      expect(imported.stderr).toBe('');
      expect(imported).toMatchObject({ code: 0 });
      expect(imported.stdout).toContain(`imported ${TOKENS} token(s) into deep/default`);
    } finally {
      daemon.kill('SIGTERM');
      await daemon.exited;
    }
    const db = openDatabase(database.url);
    try {
      expect(await listTokens(db, {})).toHaveLength(TOKENS);
    } finally {
      await db.close();
    }
  });
});
