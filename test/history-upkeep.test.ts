import { readdirSync, readlinkSync, statSync } from 'node:fs';
import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { startCheckpointer } from '../src/db/checkpointer.js';
import { openDatabase, type Db } from '../src/db/connect.js';
import { recordChecks, type CheckRecord } from '../src/db/history.js';
import { upsertProvider } from '../src/db/providers.js';
import type { TokenRow } from '../src/db/schema.js';
import { importTokens, listTokens } from '../src/db/tokens.js';
import { keepHistory } from '../src/history-keeper.js';
import { createLogger } from '../src/logger.js';
import { liveCheck } from './helpers/checks.js';
import { describeEachDialect, freshDatabaseUrl } from './helpers/databases.js';
import { CapturedLog, testDaemon } from './helpers/daemon.js';
import { waitFor } from './helpers/wait.js';

const HOUR = 3_600_000;
const logger = createLogger('silent');

/** A check of the seed: mostly live, every seventh unknown with text that fills pages, so that removing old checks frees many of them. */
function check(token: TokenRow, at: Date, i: number): CheckRecord {
  const unknown = i % 7 === 0;
  return liveCheck(token, Number(token.provider_id), {
    checkedAt: at,
    verdict: unknown ? 'unknown' : 'live',
    reason: unknown ? 'upstream_error' : 'upstream_accepted',
    latencyMs: 100 + (i % 50),
    detail: unknown ? `upstream said: busy, try again (${i})` : null,
  });
}

/** `tokens` tokens checked hourly for `days` days up to `now`. */
async function seedHistory(db: Db, tokens: number, days: number, now: Date): Promise<number> {
  const provider = await upsertProvider(db, { name: 'deep', kind: 'free-api', checkUrl: 'http://127.0.0.1:9/token/check' });
  const entries = Array.from({ length: tokens }, (_, i) => `tok-upkeep-${String(i).padStart(4, '0')}-xxxx`);
  await importTokens(db, { providerId: provider.id, pool: 'default', entries, source: 'cli' });
  const rows = await listTokens(db, {});
  let written = 0;
  for (let h = days * 24; h >= 1; h--) {
    const at = new Date(now.getTime() - h * HOUR);
    await recordChecks(
      db,
      rows.map((t, j) => check(t, new Date(at.getTime() + j), h * tokens + j)),
    );
    written += rows.length;
  }
  return written;
}

const historyRows = async (db: Db): Promise<number> =>
  Number(
    (
      await db.kysely
        .selectFrom('history_checks')
        .select((eb) => eb.fn.countAll().as('n'))
        .executeTakeFirstOrThrow()
    ).n,
  );

const pragma = async (db: Db, name: string): Promise<number> => {
  const r = await sql.raw(`PRAGMA ${name}`).execute(db.kysely);
  return Number(Object.values(r.rows[0] as Record<string, unknown>)[0]);
};

/** Open descriptors of the file's WAL in this process: one per connection (SQLite keeps the database file's own for reuse). */
const walDescriptors = (file: string): number =>
  readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === `${file}-wal`;
    } catch {
      return false; // closed meanwhile
    }
  }).length;

describeEachDialect('history upkeep', (dialect) => {
  let database: { url: string; drop: () => Promise<void> };

  beforeEach(async () => {
    database = await freshDatabaseUrl(dialect);
  });
  afterEach(async () => {
    await database.drop();
  });

  it('start-up does not wait for the history keeper: the daemon answers /healthz while old checks are still there to remove', async () => {
    const seedDb = openDatabase(database.url);
    const now = new Date();
    let written: number;
    try {
      written = await seedHistory(seedDb, 5, 6, now);
    } finally {
      await seedDb.close();
    }
    const { daemon, db } = await testDaemon(database.url, { TSCHK_HISTORY_DAYS: '1' });
    try {
      await daemon.start();
      const res = await fetch(`${daemon.httpAddress!.url}/healthz`);
      expect(res.status).toBe(200);
      const count = () => historyRows(db);
      expect(await count()).toBe(written);
      // The pass comes later, in the background; asked for now, it removes the days past the limit.
      expect(await daemon.trimHistory()).toBeGreaterThan(0);
      expect(await count()).toBeLessThanOrEqual(5 * 25);
    } finally {
      await daemon.stop();
    }
  });

  it('a lowered TSCHK_HISTORY_DAYS removes the oldest day of every token first, so no step touches a whole history', async () => {
    const db = openDatabase(database.url);
    try {
      const now = new Date('2026-11-30T12:00:00.000Z');
      const written = await seedHistory(db, 6, 8, now);
      // Everything rolled up first, as a daemon that ran with the longer limit would have done.
      await keepHistory(db, { historyDays: 30, rollupDays: 400, logger, now: () => now });
      const oldestPerToken = async () =>
        (
          await db.kysely
            .selectFrom('history_checks')
            .select(['token_id', (eb) => eb.fn.min('at').as('at')])
            .groupBy('token_id')
            .execute()
        ).map((r) => db.dialect.readTime(r.at)!.getTime());
      let trimSteps = 0;
      let widest = 0;
      const report = await keepHistory(db, {
        historyDays: 2,
        rollupDays: 400,
        logger,
        now: () => now,
        firstStepSize: 1,
        stepMs: 1e-6,
        afterStep: async (kind) => {
          if (kind !== 'trim') return;
          trimSteps++;
          const oldest = await oldestPerToken();
          widest = Math.max(widest, Math.max(...oldest) - Math.min(...oldest));
        },
      });
      expect(report.removed).toBeGreaterThan(written / 2);
      expect(trimSteps).toBeGreaterThan(6);
      // Between two steps, the tokens' oldest checks are never more than a day (and the seed's few ms) apart.
      expect(widest).toBeLessThanOrEqual(24 * HOUR + 10);
      expect(Math.min(...(await oldestPerToken()))).toBeGreaterThanOrEqual(now.getTime() - 2 * 24 * HOUR);
    } finally {
      await db.close();
    }
  });
});

// SQLite only: the server databases give their space back themselves (autovacuum, InnoDB purge).
describe('history upkeep of an SQLite file', () => {
  let database: { url: string; drop: () => Promise<void> };
  let opened: Db | undefined;

  beforeEach(async () => {
    database = await freshDatabaseUrl('sqlite');
  });
  afterEach(async () => {
    await opened?.close();
    opened = undefined;
    await database.drop();
  });

  /** 20 tokens with 8 days of checks each, the WAL copied back: the file a pass starts from (closed after the test). */
  const seededFile = async () => {
    const db = (opened = openDatabase(database.url));
    const now = new Date('2026-11-30T12:00:00.000Z');
    await seedHistory(db, 20, 8, now);
    await sql`PRAGMA wal_checkpoint(TRUNCATE)`.execute(db.kysely);
    return { db, now, file: database.url.slice('sqlite:'.length) };
  };

  it('a pass that removes old checks gives the freed pages back to the file system, and the WAL is held to its size limit', async () => {
    const { db, now, file } = await seededFile();
    const before = statSync(file).size;

    const report = await keepHistory(db, { historyDays: 2, rollupDays: 400, logger, now: () => now });

    expect(report.removed).toBeGreaterThan(0);
    // Free pages the file keeps would only be reused, never given back.
    expect(await pragma(db, 'freelist_count')).toBe(0);
    expect(report.pagesFreed).toBeGreaterThan(0);
    expect(statSync(file).size).toBeLessThan(before * 0.75);
    // A checkpoint that emptied the WAL cuts it back to this size (a 0.1.0 file grew a 404 MB one).
    expect(await pragma(db, 'journal_size_limit')).toBe(64 * 2 ** 20);
  });

  it('during a pass another connection copies the WAL back, and is gone when the pass ends or fails', async () => {
    const { db, now, file } = await seededFile();
    const connections = () => walDescriptors(file);
    expect(connections()).toBe(1);
    let during = 0;
    let autoDuring = -1;
    let walMax = 0;
    const report = await keepHistory(db, {
      historyDays: 2,
      rollupDays: 400,
      logger,
      now: () => now,
      checkpointEveryMs: 0,
      afterStep: async () => {
        during = Math.max(during, connections());
        autoDuring = await pragma(db, 'wal_autocheckpoint');
        walMax = Math.max(walMax, statSync(`${file}-wal`).size);
      },
    });
    expect(report.removed).toBeGreaterThan(0);
    expect(during).toBe(2);
    // This connection's commits no longer copy the WAL back; the other one keeps it to a few steps' pages.
    expect(autoDuring).toBe(0);
    expect(walMax).toBeLessThan(256 * 1024);
    expect(connections()).toBe(1);
    expect(await pragma(db, 'wal_autocheckpoint')).toBe(1000);

    await recordChecks(
      db,
      (await listTokens(db, {})).map((t, i) => check(t, new Date(now.getTime() + i), i)),
    );
    // The first step asks for a copy, which starts the thread; the second one throws.
    let steps = 0;
    let beforeCrash = 0;
    await expect(
      keepHistory(db, {
        historyDays: 1,
        rollupDays: 400,
        logger,
        now: () => new Date(now.getTime() + 2 * 24 * HOUR),
        checkpointEveryMs: 0,
        firstStepSize: 1,
        afterStep: async () => {
          if (++steps < 2) return;
          beforeCrash = connections();
          expect(await pragma(db, 'wal_autocheckpoint')).toBe(0);
          throw new Error('crash half-way');
        },
      }),
    ).rejects.toThrow('crash half-way');
    expect(beforeCrash).toBe(2);
    expect(connections()).toBe(1);
    expect(await pragma(db, 'wal_autocheckpoint')).toBe(1000);
  });

  it("holds a run's history writes while the thread copies the WAL back, and writes them after", async () => {
    const { db, now } = await seededFile();
    const held = vi.spyOn(db.writePause, 'during');
    await keepHistory(db, { historyDays: 2, rollupDays: 400, logger, now: () => now, checkpointEveryMs: 0 });
    expect(held).toHaveBeenCalled();

    const rows = () => historyRows(db);
    const before = await rows();
    let release!: () => void;
    void db.writePause.during(() => new Promise<void>((r) => (release = r)), 60_000);
    const asked = vi.spyOn(db.writePause, 'wait');
    const transactions = vi.spyOn(db.kysely, 'transaction');
    const tokens = await listTokens(db, {});
    let writing: Promise<void>;
    try {
      writing = recordChecks(
        db,
        tokens.map((t, i) => check(t, new Date(now.getTime() + i), i)),
      );
      await waitFor(() => asked.mock.calls.length > 0, 5_000, 'the batch asks whether it may write');
      // A batch that did not wait would open its transaction within a turn or two.
      for (let turn = 0; turn < 10; turn++) await new Promise((r) => setImmediate(r));
      expect(transactions).not.toHaveBeenCalled();
      expect(await rows()).toBe(before);
    } finally {
      release();
    }
    await writing;
    expect(transactions).toHaveBeenCalledTimes(1);
    expect(await rows()).toBe(before + tokens.length);
  });

  it('gives up a thread that does not answer in time: told once, the pass goes on, and SQLite copies at commits again', async () => {
    const log = new CapturedLog();
    const { db, now } = await seededFile();
    let autoAfterFailure = -1;
    const report = await keepHistory(db, {
      historyDays: 2,
      rollupDays: 400,
      logger: createLogger('info', log.stream),
      now: () => now,
      checkpointEveryMs: 0,
      checkpointAnswerMs: 0,
      afterStep: async () => {
        if (log.text.includes('checkpoint thread failed')) autoAfterFailure = await pragma(db, 'wal_autocheckpoint');
      },
    });
    expect(report).toMatchObject({ stopped: false });
    expect(report.removed).toBeGreaterThan(0);
    const told = log.entries().filter((e) => String(e.msg).includes('the checkpoint thread failed'));
    expect(told).toEqual([expect.objectContaining({ level: 'warn', err: 'the checkpoint thread did not answer within 0 ms' })]);
    expect(autoAfterFailure).toBe(1000);
    expect(await pragma(db, 'wal_autocheckpoint')).toBe(1000);
  });

  it('a daemon stopped during a pass ends the checkpoint thread with it', async () => {
    const seedDb = openDatabase(database.url);
    try {
      await seedHistory(seedDb, 40, 16, new Date());
    } finally {
      await seedDb.close();
    }
    const file = database.url.slice('sqlite:'.length);
    const wals = () => walDescriptors(file);
    const { daemon } = await testDaemon(database.url, { TSCHK_HISTORY_DAYS: '2' });
    try {
      const pass = daemon.trimHistory();
      await waitFor(() => wals() >= 2, 2_000, 'a checkpoint thread during the pass', 5);
      await daemon.stop();
      await pass;
    } finally {
      await daemon.stop();
    }
    expect(daemon.lastHistoryPass?.stopped).toBe(true);
    expect(wals()).toBe(0);
  });

  it('a checkpoint thread stopped as asked says nothing; one whose last copy does not come says so', async () => {
    const { file } = await seededFile();
    const quiet: unknown[] = [];
    const asked = startCheckpointer({ path: file, synchronous: 1 }, (err) => quiet.push(err));
    expect(await asked.checkpoint()).toMatchObject({ busy: 0 });
    await asked.stop();
    expect(quiet).toEqual([]);
    expect(walDescriptors(file)).toBe(1);

    const told: unknown[] = [];
    await startCheckpointer({ path: file, synchronous: 1 }, (err) => told.push(err), 0).stop();
    expect(told.map(String)).toEqual(['Error: the checkpoint thread did not answer within 0 ms']);
  });

  it('a pass that fails tells its own error, not that of ending its checkpoints after it', async () => {
    const log = new CapturedLog();
    const { db, now } = await seededFile();
    await expect(
      keepHistory(db, {
        historyDays: 2,
        rollupDays: 400,
        logger: createLogger('info', log.stream),
        now: () => now,
        checkpointEveryMs: 0,
        afterStep: async () => {
          // The connection is gone, so the copy that ends the pass fails too (the first step
          // comes before any copy was asked for: no thread was started).
          await db.close();
          throw new Error('crash half-way');
        },
      }),
    ).rejects.toThrow('crash half-way');
    expect(log.entries().filter((e) => String(e.msg).includes('ending the checkpoints failed'))).toEqual([
      expect.objectContaining({ level: 'warn', err: expect.any(String) }),
    ]);
  });

  it('a checkpoint thread that cannot open its file says so once and checkpoints nothing', async () => {
    const failures: unknown[] = [];
    const checkpointer = startCheckpointer({ path: `${database.url.slice('sqlite:'.length)}.missing`, synchronous: 1 }, (err) =>
      failures.push(err),
    );
    expect(await checkpointer.checkpoint()).toBeUndefined();
    await checkpointer.stop();
    expect(failures).toHaveLength(1);
    expect(String(failures[0])).toMatch(/SQLITE_CANTOPEN/);
  });
});
