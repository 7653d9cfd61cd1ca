import { Migrator } from 'kysely';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { migrations } from '../migrations/index.js';
import { openDatabase, type Db } from '../src/db/connect.js';
import { listHistory, recordChecks, type CheckRecord } from '../src/db/history.js';
import { migrateToLatest } from '../src/db/migrate.js';
import { upsertProvider } from '../src/db/providers.js';
import { importTokens, listTokens } from '../src/db/tokens.js';
import type { TokenRow } from '../src/db/schema.js';
import { describeEachDialect, freshDatabaseUrl } from './helpers/databases.js';

const T0 = new Date('2026-11-20T08:00:00.000Z');
const at = (minutes: number) => new Date(T0.getTime() + minutes * 60_000);

describeEachDialect('recording a batch of checks', (dialect) => {
  let database: { url: string; drop: () => Promise<void> };
  let db: Db;
  let providerId: number;

  beforeEach(async () => {
    database = await freshDatabaseUrl(dialect);
    db = openDatabase(database.url);
    await migrateToLatest(db);
    providerId = (await upsertProvider(db, { name: 'deep', kind: 'free-api', checkUrl: 'http://127.0.0.1:9/token/check' })).id;
  });
  afterEach(async () => {
    await db.close();
    await database.drop();
  });

  const seed = async (secrets: string[]) => {
    await importTokens(db, { providerId, pool: 'default', entries: secrets, source: 'cli' }, T0);
    // What a batch must not erase: each token was live once, has a balance and is invalid since T0.
    await db.kysely
      .updateTable('tokens')
      .set({ last_live_at: db.dialect.time(T0), invalid_since: db.dialect.time(T0), balance: '9.50', currency: 'CNY', consecutive_dead: 1 })
      .execute();
    return new Map((await listTokens(db, {})).map((t) => [t.secret, t]));
  };
  const record = (token: TokenRow, checkedAt: Date, r: Partial<CheckRecord> & Pick<CheckRecord, 'verdict' | 'next'>): CheckRecord => ({
    runId: null,
    tokenId: token.id,
    providerId,
    fingerprint: token.fingerprint,
    checkedAt,
    reason: r.verdict === 'live' ? 'upstream_accepted' : r.verdict === 'dead' ? 'upstream_rejected' : 'timeout',
    httpStatus: 200,
    latencyMs: 12,
    balance: null,
    currency: null,
    detail: null,
    // As seeded: what the run read before this check.
    prev: { state: 'active', consecutiveDead: 1 },
    ...r,
  });
  const stateOf = async () =>
    Object.fromEntries(
      (await listTokens(db, {})).map((t) => [
        t.secret,
        {
          state: t.state,
          consecutiveDead: Number(t.consecutive_dead),
          verdict: t.last_verdict,
          reason: t.last_reason,
          checkedAt: db.dialect.readTime(t.last_checked_at)?.toISOString() ?? null,
          liveAt: db.dialect.readTime(t.last_live_at)?.toISOString() ?? null,
          invalidSince: db.dialect.readTime(t.invalid_since)?.toISOString() ?? null,
          balance: t.balance === null ? null : `${Number(t.balance).toFixed(2)} ${t.currency}`,
        },
      ]),
    );

  it('gives every token of a mixed batch its own new state and leaves the rest as it was', async () => {
    const tokens = await seed([
      'tok-live',
      'tok-suspect',
      'tok-invalid',
      'tok-unknown',
      'tok-exhausted',
      'tok-recovered',
      'tok-twice',
      'tok-untouched',
    ]);
    const tok = (s: string) => tokens.get(s)!;
    await recordChecks(db, [
      record(tok('tok-live'), at(1), { verdict: 'live', next: { state: 'active', consecutiveDead: 0, invalidSince: undefined } }),
      record(tok('tok-suspect'), at(2), { verdict: 'dead', next: { state: 'suspect', consecutiveDead: 2, invalidSince: undefined } }),
      record(tok('tok-invalid'), at(3), { verdict: 'dead', next: { state: 'invalid', consecutiveDead: 2, invalidSince: at(3) } }),
      record(tok('tok-unknown'), at(4), { verdict: 'unknown', next: { state: 'active', consecutiveDead: 1, invalidSince: undefined } }),
      record(tok('tok-exhausted'), at(5), {
        verdict: 'exhausted',
        reason: 'no_balance',
        balance: '0.00',
        currency: 'USD',
        next: { state: 'active', consecutiveDead: 0, invalidSince: undefined },
      }),
      record(tok('tok-recovered'), at(6), { verdict: 'live', next: { state: 'active', consecutiveDead: 0, invalidSince: null } }),
      record(tok('tok-twice'), at(7), { verdict: 'dead', next: { state: 'suspect', consecutiveDead: 2, invalidSince: undefined } }),
      record(tok('tok-twice'), at(8), { verdict: 'live', next: { state: 'active', consecutiveDead: 0, invalidSince: undefined } }),
    ]);

    const t0 = T0.toISOString();
    expect(await stateOf()).toEqual({
      'tok-live': {
        state: 'active',
        consecutiveDead: 0,
        verdict: 'live',
        reason: 'upstream_accepted',
        checkedAt: at(1).toISOString(),
        liveAt: at(1).toISOString(),
        invalidSince: t0,
        balance: null,
      },
      'tok-suspect': {
        state: 'suspect',
        consecutiveDead: 2,
        verdict: 'dead',
        reason: 'upstream_rejected',
        checkedAt: at(2).toISOString(),
        liveAt: t0,
        invalidSince: t0,
        balance: '9.50 CNY',
      },
      'tok-invalid': {
        state: 'invalid',
        consecutiveDead: 2,
        verdict: 'dead',
        reason: 'upstream_rejected',
        checkedAt: at(3).toISOString(),
        liveAt: t0,
        invalidSince: at(3).toISOString(),
        balance: '9.50 CNY',
      },
      'tok-unknown': {
        state: 'active',
        consecutiveDead: 1,
        verdict: 'unknown',
        reason: 'timeout',
        checkedAt: at(4).toISOString(),
        liveAt: t0,
        invalidSince: t0,
        balance: '9.50 CNY',
      },
      'tok-exhausted': {
        state: 'active',
        consecutiveDead: 0,
        verdict: 'exhausted',
        reason: 'no_balance',
        checkedAt: at(5).toISOString(),
        liveAt: t0,
        invalidSince: t0,
        balance: '0.00 USD',
      },
      'tok-recovered': {
        state: 'active',
        consecutiveDead: 0,
        verdict: 'live',
        reason: 'upstream_accepted',
        checkedAt: at(6).toISOString(),
        liveAt: at(6).toISOString(),
        invalidSince: null,
        balance: null,
      },
      'tok-twice': {
        state: 'active',
        consecutiveDead: 0,
        verdict: 'live',
        reason: 'upstream_accepted',
        checkedAt: at(8).toISOString(),
        liveAt: at(8).toISOString(),
        invalidSince: t0,
        balance: null,
      },
      'tok-untouched': {
        state: 'active',
        consecutiveDead: 1,
        verdict: null,
        reason: null,
        checkedAt: null,
        liveAt: t0,
        invalidSince: t0,
        balance: '9.50 CNY',
      },
    });
    const history = await listHistory(db, { limit: 100 });
    expect(history).toHaveLength(8);
    const exhausted = history.find((h) => h.token_id === tok('tok-exhausted').id)!;
    expect({
      ...exhausted,
      id: undefined,
      checked_at: db.dialect.readTime(exhausted.checked_at)?.toISOString(),
      latency_ms: Number(exhausted.latency_ms),
      balance: Number(exhausted.balance).toFixed(2),
    }).toEqual({
      id: undefined,
      run_id: null,
      token_id: tok('tok-exhausted').id,
      provider_id: providerId,
      fingerprint: tok('tok-exhausted').fingerprint,
      checked_at: at(5).toISOString(),
      verdict: 'exhausted',
      reason: 'no_balance',
      http_status: 200,
      latency_ms: 12,
      balance: '0.00',
      currency: 'USD',
      detail: null,
    });
  });

  it('writes a batch larger than one statement, where every token got the same answer', async () => {
    const secrets = Array.from({ length: 601 }, (_, i) => `tok-${String(i).padStart(4, '0')}-aaaaaaaa`);
    const tokens = await seed(secrets);
    const checked = secrets
      .slice(0, 600)
      .map((s) =>
        record(tokens.get(s)!, at(30), { verdict: 'dead', next: { state: 'suspect', consecutiveDead: 2, invalidSince: undefined } }),
      );
    await recordChecks(db, checked);

    const after = await stateOf();
    const suspect = {
      state: 'suspect',
      consecutiveDead: 2,
      verdict: 'dead',
      reason: 'upstream_rejected',
      checkedAt: at(30).toISOString(),
      liveAt: T0.toISOString(),
      invalidSince: T0.toISOString(),
      balance: '9.50 CNY',
    };
    expect(secrets.slice(0, 600).filter((s) => JSON.stringify(after[s]) !== JSON.stringify(suspect))).toEqual([]);
    expect(after[secrets[600]!]).toMatchObject({ state: 'active', verdict: null, checkedAt: null });
    expect(await listHistory(db, { limit: 1000 })).toHaveLength(600);
  });

  it('can roll the due-token index back and apply it again', async () => {
    const migrator = new Migrator({ db: db.kysely, provider: { getMigrations: async () => migrations } });
    const down = await migrator.migrateTo('20261128000000_oneapi_disabled_channels');
    expect(down.error).toBeUndefined();
    expect(down.results?.map((r) => [r.migrationName, r.direction, r.status])).toContainEqual([
      '20261129000000_tokens_due_index',
      'Down',
      'Success',
    ]);
    expect(await migrateToLatest(db)).toContain('20261129000000_tokens_due_index');
  });
});
