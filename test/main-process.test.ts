// What only the real process shows (src/main.ts): SIGTERM stops gracefully, a second signal ends it
// at once with 130, TSCHK_SHUTDOWN_GRACE_MS is the grace it gives a run in flight, and the exit
// code of `tschk check` says whether the run finished, and a stop that hangs is ended by the watchdog.
import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../src/db/connect.js';
import { migrateToLatest } from '../src/db/migrate.js';
import { upsertProvider } from '../src/db/providers.js';
import { importTokens } from '../src/db/tokens.js';
import { freshDatabaseUrl, testDialects, type ServerDialect } from './helpers/databases.js';
import { startMockFreeApi, type MockFreeApi } from './helpers/mock-free-api.js';
import { startTschk, type TschkProcess } from './helpers/spawn.js';
import { waitFor } from './helpers/wait.js';

const TOKENS = ['tok-proc-1-aaaaaaaaaa', 'tok-proc-2-bbbbbbbbbb', 'tok-proc-3-cccccccccc'];

describe('the tschk process', () => {
  let mock: MockFreeApi;
  let database: { url: string; drop: () => Promise<void> };
  let proc: TschkProcess | undefined;

  beforeEach(async () => {
    mock = await startMockFreeApi({ defaultBehaviour: 'live' });
    database = await freshDatabaseUrl('sqlite');
    const db = openDatabase(database.url);
    try {
      await migrateToLatest(db);
      const p = await upsertProvider(db, { name: 'deep', kind: 'free-api', checkUrl: mock.checkUrl });
      await importTokens(db, { providerId: p.id, pool: 'default', entries: TOKENS, source: 'cli' });
    } finally {
      await db.close();
    }
  });
  afterEach(async () => {
    if (proc) {
      proc.kill('SIGKILL');
      await proc.exited;
      proc = undefined;
    }
    await mock.close();
    await database.drop();
  });

  const env = (extra: Record<string, string> = {}) => ({
    TSCHK_DATABASE_URL: database.url,
    TSCHK_HTTP_PORT: '0',
    TSCHK_HTTP_HOST: '127.0.0.1',
    TSCHK_RETRIES: '0',
    TSCHK_TIMEOUT_MS: '60000',
    ...extra,
  });

  it('`check` stopped by SIGTERM ends its run as aborted and exits 1', async () => {
    mock.setDefault('timeout');
    proc = startTschk(['check', '--json'], env({ TSCHK_SHUTDOWN_GRACE_MS: '0' }));
    await waitFor(() => mock.calls.length >= 1, 20_000, 'the check never reached the upstream');

    proc.kill('SIGTERM');
    const exit = await proc.exited;

    expect(exit).toEqual({ code: 1, signal: null });
    const summary = JSON.parse(proc.logs.map((l) => (l.notJson ? l.msg : JSON.stringify(l))).join('\n')) as { status: string };
    expect(summary.status).toBe('aborted');
  });

  it('`serve` stops on SIGTERM after the TSCHK_SHUTDOWN_GRACE_MS of the environment, 0 included, and exits 0', async () => {
    mock.setDefault('timeout');
    proc = startTschk(['serve'], env({ TSCHK_RUN_ON_START: 'true', TSCHK_SHUTDOWN_GRACE_MS: '0' }));
    await waitFor(() => mock.calls.length >= 1, 20_000, 'the start-up run never reached the upstream');

    proc.kill('SIGTERM');

    expect(await proc.exited).toEqual({ code: 0, signal: null });
    expect(proc.logs.find((l) => l.msg === 'waiting for the run in flight')).toMatchObject({ graceMs: 0 });
    const said = proc.logs.map((l) => l.msg);
    expect(said.indexOf('shutdown requested')).toBeGreaterThan(-1);
    expect(said.indexOf('grace period over: abandoning checks in flight')).toBeGreaterThan(said.indexOf('shutdown requested'));
    expect(said.indexOf('stopped')).toBeGreaterThan(said.indexOf('grace period over: abandoning checks in flight'));
  });

  it('exits at once with 130 on a second signal while the first waits for the run', async () => {
    mock.setDefault('timeout');
    proc = startTschk(['serve'], env({ TSCHK_RUN_ON_START: 'true', TSCHK_SHUTDOWN_GRACE_MS: '600000' }));
    await waitFor(() => mock.calls.length >= 1, 20_000, 'the start-up run never reached the upstream');

    proc.kill('SIGTERM');
    await proc.waitForLog((l) => l.msg === 'waiting for the run in flight');
    proc.kill('SIGINT');

    expect(await proc.exited).toEqual({ code: 130, signal: null });
    expect(proc.stderr()).toContain('tschk: second SIGINT, exiting now');
    expect(proc.logs.some((l) => l.msg === 'stopped')).toBe(false);
  });
});

const servers = testDialects().filter((d): d is ServerDialect => d !== 'sqlite');

describe.skipIf(servers.length === 0)('the watchdog of the tschk process', () => {
  it.each(servers)(
    'ends a stop that hangs on a locked row of %s with exit 1, TSCHK_SHUTDOWN_WATCHDOG_MS after the grace',
    async (dialect) => {
      const database = await freshDatabaseUrl(dialect);
      const db = openDatabase(database.url);
      let unlock = () => {};
      const proc = startTschk(['serve'], {
        TSCHK_DATABASE_URL: database.url,
        TSCHK_HTTP_PORT: '0',
        TSCHK_HTTP_HOST: '127.0.0.1',
        TSCHK_RUN_ON_START: 'false',
        TSCHK_SHUTDOWN_GRACE_MS: '0',
        TSCHK_SHUTDOWN_WATCHDOG_MS: '100',
      });
      try {
        await proc.waitForLog((l) => l.msg === 'tschk serving');
        // Another session holds this daemon's row of `daemons`: the stop's last write to it never returns.
        let locked = () => {};
        const lockHeld = new Promise<void>((r) => (locked = r));
        const session = db.kysely.transaction().execute(async (trx) => {
          await sql`SELECT holder FROM daemons FOR UPDATE`.execute(trx);
          locked();
          await new Promise<void>((r) => (unlock = r));
        });
        await lockHeld;

        proc.kill('SIGTERM');
        const exit = await proc.exited;
        unlock();
        await session;

        expect(exit).toEqual({ code: 1, signal: null });
        expect(proc.stderr()).toContain('tschk: the stop did not finish within 100 ms, exiting');
        const said = proc.logs.map((l) => l.msg);
        expect(said).toContain('shutdown requested');
        expect(said).not.toContain('stopped');
      } finally {
        unlock();
        proc.kill('SIGKILL');
        await proc.exited;
        await db.close();
        await database.drop();
      }
    },
  );
});
