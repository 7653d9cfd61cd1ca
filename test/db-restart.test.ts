// The database server stops in the middle of a run, as in a routine restart or a failover. Each
// dialect gets its own throwaway server: the shared ones of global setup serve other tests.
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isTransient } from '../src/db/errors.js';
import type { Clock } from '../src/engine/limits.js';
import { upsertProvider } from '../src/db/providers.js';
import { findRun } from '../src/db/runs.js';
import { importTokens } from '../src/db/tokens.js';
import { findBinary, startMariadb, startPostgres, type TestServer } from './helpers/db-servers.js';
import { servedDaemon, type Served } from './helpers/http.js';
import { startMockFreeApi, type MockFreeApi } from './helpers/mock-free-api.js';

const TOKENS = Array.from({ length: 24 }, (_, i) => `restart-token-${String(i).padStart(2, '0')}-Kd3w`);

const SERVERS = {
  postgres: { available: () => !!(findBinary('initdb') && findBinary('pg_ctl')), start: startPostgres },
  mysql: { available: () => !!(findBinary('mariadb-install-db') && findBinary('mariadbd')), start: startMariadb },
} as const;

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await Promise.resolve()
      .then(probe)
      .catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// Both servers boot at once, when the file starts: each waits mostly on its own processes.
const booting: Partial<Record<keyof typeof SERVERS, Promise<TestServer>>> = {};
const boot = (dialect: keyof typeof SERVERS) => (booting[dialect] ??= SERVERS[dialect].start());
beforeAll(() => {
  for (const dialect of ['postgres', 'mysql'] as const) if (SERVERS[dialect].available()) boot(dialect).catch(() => {});
});
// Here rather than in each suite: a suite left out (by -t) would leave its server running.
afterAll(async () => {
  await Promise.allSettled(Object.values(booting).map(async (server) => (await server).destroy()));
});

for (const dialect of ['postgres', 'mysql'] as const) {
  describe.skipIf(!SERVERS[dialect].available())(`the database restarts in the middle of a run [${dialect}]`, () => {
    let server: TestServer;
    let mock: MockFreeApi;
    let s: Served;
    // The daemon's waits between two tries of a write end when the test says, not after seconds of back-off:
    // once `resume` settles (at once by default).
    let resume: Promise<unknown> = Promise.resolve();
    const clock: Clock = {
      now: () => Date.now(),
      sleep: async (_ms, signal) => {
        const aborted = new Promise<void>((r) => signal?.addEventListener('abort', () => r(), { once: true }));
        await Promise.race([resume.catch(() => {}), aborted]);
      },
    };

    beforeAll(async () => {
      server = await boot(dialect);
      let url = server.url;
      if (dialect === 'mysql') {
        const conn = await mysql.createConnection(url);
        await conn.query('CREATE DATABASE tschk');
        await conn.end();
        url = url.replace(/\/mysql$/, '/tschk');
      }
      // Slow answers, so that the server goes away while checks are in flight.
      mock = await startMockFreeApi({ defaultBehaviour: { kind: 'delay', ms: 150, then: 'live' } });
      s = await servedDaemon(url, { TSCHK_PRUNE: 'off', TSCHK_RETRIES: '0', TSCHK_HISTORY_FLUSH_MS: '20' }, { clock });
      const p = await upsertProvider(s.db, { name: 'deep', kind: 'free-api', checkUrl: mock.checkUrl });
      await importTokens(s.db, { providerId: p.id, pool: 'default', entries: TOKENS, source: 'cli' });
    }, 120_000);

    afterAll(async () => {
      await s?.daemon.stop();
      await mock?.close();
    });

    const historyOf = async (runId: number) =>
      (await s.db.kysely.selectFrom('token_status').select('token_id').where('run_id', '=', runId).execute()).length;

    it('a run whose writes cannot get through fails with the real reason; its row is closed once the server is back', async () => {
      const calls = mock.calls.length;
      const running = s.daemon.runNow({ trigger: 'cli', force: true });
      await until('checks in flight', () => (mock.calls.length > calls + 4 ? true : undefined));
      // A transaction waits between two statements while the server stops: its connection, lent
      // out of the pool, is told the server is going away.
      const stopping: { done?: Promise<void> } = {};
      let begin!: () => void;
      const begun = new Promise<void>((resolve) => (begin = resolve));
      const held = s.db.kysely.transaction().execute(async (trx) => {
        await trx.selectFrom('check_runs').select('id').execute();
        begin();
        await until('the server stopping', () => (stopping.done ? true : undefined));
        await stopping.done;
        await trx.selectFrom('check_runs').select('id').execute();
      });
      await begun;
      // The tries of a batch go on once the server is down: the last one is refused.
      stopping.done = server.stop();
      resume = stopping.done;
      await stopping.done;
      await expect(held).rejects.toSatisfy((e) => isTransient(dialect, e));

      const summary = await running;
      let started!: () => void;
      resume = new Promise<void>((r) => (started = r));
      expect(summary.status).toBe('failed');
      expect(summary.error).toMatch(/^check results not written after 6 tries: connect ECONNREFUSED /);
      expect((await s.call('GET', '/healthz', { auth: null })).status).toBe(503);
      const post = await s.call('POST', '/api/v1/tokens', { body: { provider: 'deep', tokens: ['restart-token-new-Kd3w'] } });
      expect(post.status).toBe(503);
      expect(post.headers.get('retry-after')).toBe('5');
      expect(post.json()).toEqual({
        error: {
          code: 'database_unavailable',
          message: expect.stringMatching(/^the database is unavailable \(connect ECONNREFUSED .*\); try again shortly$/),
        },
      });

      const warnings = s.log.entries().filter((e) => e.level === 'warn');
      expect(warnings.some((e) => String(e.msg).startsWith('database connection lost') && typeof e.code === 'string')).toBe(true);
      expect(warnings.filter((e) => String(e.msg).startsWith('check results: transient database error')).map((e) => e.attempt)).toEqual([
        1, 2, 3, 4, 5,
      ]);

      await server.start();
      started();
      // Nothing else writes: the closer's own retries close the row.
      const row = await until('the run row closed', async () => {
        const r = await findRun(s.db, summary.runId);
        return r && r.status !== 'running' ? r : undefined;
      });
      expect(row).toMatchObject({ status: 'failed', error: summary.error });
      expect((await s.call('GET', '/healthz', { auth: null })).json()).toMatchObject({ status: 'ok' });
    });

    it('a restart that ends while a batch is retried costs nothing: the run completes with every check written once', async () => {
      const calls = mock.calls.length;
      const retriesBefore = s.log.entries().filter((e) => String(e.msg).startsWith('check results: transient database error')).length;
      const running = s.daemon.runNow({ trigger: 'cli', force: true });
      await until('checks in flight', () => (mock.calls.length > calls + 4 ? true : undefined));
      let started!: () => void;
      resume = new Promise<void>((r) => (started = r));
      await server.stop();
      await until('a batch retried', () =>
        s.log.entries().filter((e) => String(e.msg).startsWith('check results: transient database error')).length > retriesBefore
          ? true
          : undefined,
      );
      await server.start();
      started();

      const summary = await running;
      expect(summary).toMatchObject({ status: 'done', checked: TOKENS.length, live: TOKENS.length });
      expect(await historyOf(summary.runId)).toBe(TOKENS.length);
      expect(await findRun(s.db, summary.runId)).toMatchObject({ status: 'done', checked: TOKENS.length });

      for (const t of TOKENS) expect(s.log.text).not.toContain(t);
    });
  });
}
