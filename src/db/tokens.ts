import { sql, type Expression, type ExpressionBuilder, type SqlBool } from 'kysely';
import { fingerprint, splitTokens, UnusableTokensError, unusableEntries } from '../secret.js';
import { inTransaction, type Db, type Executor } from './connect.js';
import { num } from './dialect.js';
import { eventsFor, recordTokenEvents } from './events.js';
import type { Database, EventActor, TokenRow, TokenSource, TokenState, Verdict } from './schema.js';

/** Which run, or who, removed tokens: what their `pruned` or `removed` event says. */
export interface EventCause {
  runId?: number | null;
  actor?: EventActor | null;
}

export interface ImportRequest {
  providerId: number;
  pool: string;
  /** Stored entries; an entry holding `T1,T2` is two tokens. */
  entries: string[];
  source: TokenSource;
  sourceRef?: string | null;
  label?: string | null;
  expect?: 'live' | 'dead' | null;
  /** Keep each entry whole instead of splitting `T1,T2` (see `Checker.wholeEntries`). */
  wholeEntries?: boolean;
}

export interface ImportResult {
  added: number;
  duplicates: number;
}

const INSERT_CHUNK = 200;

/** Adds new tokens at the end of the pool; tokens already in the pool (or twice in the input) are skipped. */
export async function importTokens(db: Executor, req: ImportRequest, now = new Date()): Promise<ImportResult> {
  const unusable = unusableEntries(req.entries);
  if (unusable.length > 0) throw new UnusableTokensError(unusable);
  const tokens = req.wholeEntries ? req.entries.map((e) => e.trim()).filter(Boolean) : req.entries.flatMap(splitTokens);
  return inTransaction(db, async (tx) => {
    const existing = new Set(
      (
        await tx.kysely
          .selectFrom('tokens')
          .select('fingerprint')
          .where('provider_id', '=', req.providerId)
          .where('pool', '=', req.pool)
          .execute()
      ).map((r) => r.fingerprint),
    );
    let position = await maxPosition(tx, req.providerId, req.pool);
    const rows = [];
    let duplicates = 0;
    for (const secret of tokens) {
      const fp = fingerprint(secret);
      if (existing.has(fp)) {
        duplicates++;
        continue;
      }
      existing.add(fp);
      rows.push({
        provider_id: req.providerId,
        pool: req.pool,
        position: ++position,
        secret,
        fingerprint: fp,
        label: req.label ?? null,
        source: req.source,
        source_ref: req.sourceRef ?? null,
        expect: req.expect ?? null,
        state: 'active' as const,
        consecutive_dead: 0,
        created_at: tx.dialect.time(now),
        updated_at: tx.dialect.time(now),
      });
    }
    for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
      await tx.kysely
        .insertInto('tokens')
        .values(rows.slice(i, i + INSERT_CHUNK))
        .execute();
    }
    return { added: rows.length, duplicates };
  });
}

export async function maxPosition(db: Executor, providerId: number, pool: string): Promise<number> {
  const r = await db.kysely
    .selectFrom('tokens')
    .select((eb) => eb.fn.max('position').as('max'))
    .where('provider_id', '=', providerId)
    .where('pool', '=', pool)
    .executeTakeFirst();
  return Number(r?.max ?? 0);
}

/**
 * Which tokens of a scope a filter means: the console's pool table, and the bulk actions (remove,
 * re-check) that act on all tokens matching what the table shows, read it the same way.
 */
export interface TokenMatch {
  state?: TokenState;
  /** The current verdict; `unchecked`: never checked. */
  verdict?: Verdict | 'unchecked';
  /** The current reason code, exactly. */
  reason?: string;
  /** Found in the label (case-insensitive) or the fingerprint. */
  text?: string;
  /** Tokens up to this id only: a bulk action leaves alone those imported after it was confirmed. */
  maxId?: number;
}

/** `%` and `_` in the text are literal; `!` is the escape (a backslash would need doubling on MySQL only). */
const likePattern = (text: string) => `%${text.toLowerCase().replace(/[!%_]/g, (c) => `!${c}`)}%`;

/** The WHERE condition of a TokenMatch (true for an empty one). */
export function matchesTokens(m: TokenMatch) {
  return (eb: ExpressionBuilder<Database, 'tokens'>): Expression<SqlBool> => {
    const parts: Array<Expression<SqlBool>> = [];
    if (m.state !== undefined) parts.push(eb('state', '=', m.state));
    if (m.verdict !== undefined)
      parts.push(m.verdict === 'unchecked' ? eb('last_verdict', 'is', null) : eb('last_verdict', '=', m.verdict));
    if (m.reason !== undefined) parts.push(eb('last_reason', '=', m.reason));
    if (m.text !== undefined && m.text !== '') {
      const pattern = likePattern(m.text);
      parts.push(eb.or([sql<SqlBool>`lower(label) like ${pattern} escape '!'`, sql<SqlBool>`fingerprint like ${pattern} escape '!'`]));
    }
    if (m.maxId !== undefined) parts.push(eb('id', '<=', m.maxId));
    return eb.and(parts);
  };
}

export interface DueQuery {
  providerId: number;
  pool?: string;
  /** Only these tokens of the pool (a bulk re-check); never applied to canaries. */
  match?: TokenMatch;
  /** Tokens checked at or after this instant are not due; null: every token is (a forced run). */
  checkedBefore: Date | null;
  /** Canaries (`expect` set) or the rest. */
  canaries: boolean;
  afterId: number;
  limit: number;
}

/** What checking a token needs to know of it: reading whole rows was a cost of every check. */
export type DueToken = Pick<TokenRow, 'id' | 'pool' | 'secret' | 'fingerprint' | 'expect' | 'state' | 'consecutive_dead'>;

/** One page of tokens due for a check, in id order (keyset pagination: memory stays flat). */
export async function selectDueTokens(db: Db, q: DueQuery): Promise<DueToken[]> {
  let query = db.kysely
    .selectFrom('tokens')
    .select(['id', 'pool', 'secret', 'fingerprint', 'expect', 'state', 'consecutive_dead'])
    .where('provider_id', '=', q.providerId)
    .where('state', '!=', 'disabled')
    .where('id', '>', q.afterId)
    .where('expect', q.canaries ? 'is not' : 'is', null);
  if (q.pool !== undefined) query = query.where('pool', '=', q.pool);
  if (q.match !== undefined && !q.canaries) query = query.where(matchesTokens(q.match));
  if (q.checkedBefore !== null) {
    const cutoff = db.dialect.time(q.checkedBefore);
    query = query.where((eb) => eb.or([eb('last_checked_at', 'is', null), eb('last_checked_at', '<', cutoff)]));
  }
  return query.orderBy('id').limit(q.limit).execute();
}

/**
 * Whether a run of this pool would check anything: a token of the pool, or a canary of its
 * provider (a pool-scoped run asks them all), not checked since `checkedBefore`.
 */
export async function hasDueTokens(db: Db, q: { providerId: number; pool: string; checkedBefore: Date }): Promise<boolean> {
  const page = { checkedBefore: q.checkedBefore, afterId: 0, limit: 1, providerId: q.providerId };
  const [token] = await selectDueTokens(db, { ...page, pool: q.pool, canaries: false });
  if (token) return true;
  const [canary] = await selectDueTokens(db, { ...page, canaries: true });
  return canary !== undefined;
}

export interface TokenFilter {
  providerId?: number;
  pool?: string;
  state?: TokenState;
  match?: TokenMatch;
  afterId?: number;
  limit?: number;
}

export async function listTokens(db: Db, f: TokenFilter): Promise<TokenRow[]> {
  let query = db.kysely.selectFrom('tokens').selectAll();
  if (f.match !== undefined) query = query.where(matchesTokens(f.match));
  if (f.providerId !== undefined) query = query.where('provider_id', '=', f.providerId);
  if (f.pool !== undefined) query = query.where('pool', '=', f.pool);
  if (f.state !== undefined) query = query.where('state', '=', f.state);
  if (f.afterId !== undefined) query = query.where('id', '>', f.afterId);
  return query
    .orderBy('id')
    .limit(f.limit ?? 1_000_000)
    .execute();
}

/** A pool's tokens in its order: the legacy answers count positions from this. */
function inPoolOrder(db: Db, providerId: number, pool: string) {
  return db.kysely.selectFrom('tokens').where('provider_id', '=', providerId).where('pool', '=', pool).orderBy('position').orderBy('id');
}

export async function poolTokens(db: Db, providerId: number, pool: string): Promise<TokenRow[]> {
  return inPoolOrder(db, providerId, pool).selectAll().execute();
}

/** Each token's current verdict in pool order: all the legacy answer reads, for a pool of any size. */
export async function poolVerdicts(db: Db, providerId: number, pool: string): Promise<Array<Pick<TokenRow, 'last_verdict'>>> {
  return inPoolOrder(db, providerId, pool).select('last_verdict').execute();
}

export async function findToken(db: Db, id: number): Promise<TokenRow | undefined> {
  return db.kysely.selectFrom('tokens').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function findTokensByFingerprint(db: Db, fp: string): Promise<TokenRow[]> {
  return db.kysely.selectFrom('tokens').selectAll().where('fingerprint', '=', fp).execute();
}

/**
 * Archives the tokens, then deletes them, in one transaction (the caller's, when `db` is one), so
 * that a token is never gone without its archive row, nor without the event that says why
 * (`pruned` when a run confirmed it dead, `removed` otherwise). History rows stay.
 */
export async function archiveAndDeleteTokens(
  db: Executor,
  tokens: readonly TokenRow[],
  providerName: string,
  reason: string,
  now = new Date(),
  cause: EventCause = {},
): Promise<void> {
  if (tokens.length === 0) return;
  await inTransaction(db, async (tx) => {
    // A pruned token's event says why it was pruned: its last answer's reason.
    const events =
      reason === 'pruned'
        ? tokens.flatMap((t) => eventsFor([t], { event: 'pruned', reason: t.last_reason ?? reason, at: now, ...cause }))
        : eventsFor(tokens, { event: 'removed', reason, at: now, ...cause });
    await recordTokenEvents(tx, events);
    await archiveAndDeleteChunks(tx, tokens, providerName, reason, now);
  });
}

async function archiveAndDeleteChunks(
  tx: Executor,
  tokens: readonly TokenRow[],
  providerName: string,
  reason: string,
  now: Date,
): Promise<void> {
  for (let i = 0; i < tokens.length; i += INSERT_CHUNK) {
    const chunk = tokens.slice(i, i + INSERT_CHUNK);
    await tx.kysely
      .insertInto('token_archive')
      .values(
        chunk.map((t) => ({
          token_id: t.id,
          provider_id: t.provider_id,
          provider_name: providerName,
          pool: t.pool,
          secret: t.secret,
          fingerprint: t.fingerprint,
          label: t.label,
          source: t.source,
          source_ref: t.source_ref,
          expect: t.expect,
          last_verdict: t.last_verdict,
          last_reason: t.last_reason,
          reason,
          archived_at: tx.dialect.time(now),
          restored_at: null,
        })),
      )
      .execute();
    await tx.kysely
      .deleteFrom('tokens')
      .where(
        'id',
        'in',
        chunk.map((t) => t.id),
      )
      .execute();
  }
}

/** Archives every token of the provider, then removes them and the provider, in one transaction. */
export async function removeProviderAndTokens(db: Executor, provider: { id: number; name: string }, actor: EventActor): Promise<number> {
  return inTransaction(db, async (tx) => {
    const tokens = await tx.kysely.selectFrom('tokens').selectAll().where('provider_id', '=', provider.id).execute();
    await archiveAndDeleteTokens(tx, tokens, provider.name, 'provider_removed', new Date(), { actor });
    await tx.kysely.deleteFrom('providers').where('id', '=', provider.id).execute();
    return tokens.length;
  });
}

/** How many tokens a pool holds in one state with one current verdict (null: never checked). */
export interface PoolCountRow {
  providerId: number;
  provider: string;
  pool: string;
  state: TokenState;
  verdict: Verdict | null;
  n: number;
  /** Canaries among them (tokens with an `expect`). */
  canaries: number;
  /** The latest check of these tokens. */
  lastCheckedAt: Date | null;
}

/**
 * Tokens grouped by provider, pool, state and current verdict: the status pages, the metrics and
 * the Uptime Kuma pushes each sum the groups they show. `inRotation`: disabled tokens and the
 * tokens of disabled providers left out.
 */
export async function tokenCountsByPool(db: Executor, opts: { inRotation?: boolean } = {}): Promise<PoolCountRow[]> {
  let query = db.kysely
    .selectFrom('tokens')
    .innerJoin('providers', 'providers.id', 'tokens.provider_id')
    .select((eb) => [
      'providers.id as provider_id',
      'providers.name as provider',
      'tokens.pool as pool',
      'tokens.state as state',
      'tokens.last_verdict as verdict',
      eb.fn.countAll().as('n'),
      eb.fn.count('tokens.expect').as('canaries'),
      eb.fn.max('tokens.last_checked_at').as('last'),
    ])
    .groupBy(['providers.id', 'providers.name', 'tokens.pool', 'tokens.state', 'tokens.last_verdict']);
  if (opts.inRotation) query = query.where('tokens.state', '!=', 'disabled').where('providers.enabled', '=', 1);
  const rows = await query.execute();
  return rows.map((r) => ({
    providerId: num(r.provider_id),
    provider: r.provider,
    pool: r.pool,
    state: r.state,
    verdict: r.verdict,
    n: num(r.n),
    canaries: num(r.canaries),
    lastCheckedAt: db.dialect.readTime(r.last),
  }));
}

/** The last balance of every key that has one and is not dead (an unknown answer keeps the last one read). */
export async function balancesNotDead(db: Executor): Promise<Array<{ provider: string; balance: string; currency: string }>> {
  const rows = await db.kysely
    .selectFrom('tokens')
    .innerJoin('providers', 'providers.id', 'tokens.provider_id')
    .select(['providers.name as provider', 'tokens.balance as balance', 'tokens.currency as currency'])
    .where('tokens.balance', 'is not', null)
    .where('tokens.currency', 'is not', null)
    .where((eb) => eb.or([eb('tokens.last_verdict', 'is', null), eb('tokens.last_verdict', '!=', 'dead')]))
    .execute();
  return rows.map((r) => ({ provider: r.provider, balance: r.balance!, currency: r.currency! }));
}

/** Whether the pool holds a token that `source` brought. */
export async function hasSourceTokens(db: Executor, q: { providerId: number; pool: string; source: TokenSource }): Promise<boolean> {
  const row = await db.kysely
    .selectFrom('tokens')
    .select('id')
    .where('provider_id', '=', q.providerId)
    .where('pool', '=', q.pool)
    .where('source', '=', q.source)
    .limit(1)
    .executeTakeFirst();
  return row !== undefined;
}

/** Id, fingerprint and state of every token of a pool (with what an event names of it). */
export async function poolTokenStates(
  db: Executor,
  providerId: number,
  pool: string,
): Promise<Array<Pick<TokenRow, 'id' | 'fingerprint' | 'state' | 'provider_id' | 'pool'>>> {
  return db.kysely
    .selectFrom('tokens')
    .select(['id', 'fingerprint', 'state', 'provider_id', 'pool'])
    .where('provider_id', '=', providerId)
    .where('pool', '=', pool)
    .execute();
}

/** The balance of every token in rotation that has one, with its provider and pool. */
export async function poolBalances(db: Executor): Promise<Array<{ providerId: number; pool: string; balance: string; currency: string }>> {
  const rows = await db.kysely
    .selectFrom('tokens')
    .select(['provider_id', 'pool', 'balance', 'currency'])
    .where('balance', 'is not', null)
    .where('currency', 'is not', null)
    .where('state', '!=', 'disabled')
    .execute();
  return rows.map((r) => ({ providerId: num(r.provider_id), pool: r.pool, balance: r.balance!, currency: r.currency! }));
}

export interface DueCountQuery {
  providerIds: readonly number[];
  /** Not checked since (or never checked). */
  checkedBefore: Date;
  /** Count the canaries, or the other tokens. */
  canaries: boolean;
  /** Only these (for the other tokens: a run's pool and selection do not narrow its canaries). */
  pool?: string;
  selection?: TokenMatch;
}

/** How many tokens not disabled are due by the rule a run selects them with. */
export async function countDueTokens(db: Executor, q: DueCountQuery): Promise<number> {
  if (q.providerIds.length === 0) return 0;
  let query = db.kysely
    .selectFrom('tokens')
    .select((eb) => eb.fn.countAll().as('n'))
    .where('provider_id', 'in', [...q.providerIds])
    .where('state', '!=', 'disabled')
    .where('expect', q.canaries ? 'is not' : 'is', null)
    .where((eb) => eb.or([eb('last_checked_at', 'is', null), eb('last_checked_at', '<', db.dialect.time(q.checkedBefore))]));
  if (q.pool !== undefined) query = query.where('pool', '=', q.pool);
  if (q.selection) query = query.where(matchesTokens(q.selection));
  return num((await query.executeTakeFirst())?.n);
}

/** The columns a page of a pool's tokens may be sorted by. */
export const TOKEN_SORTS = [
  'position',
  'state',
  'last_verdict',
  'last_reason',
  'last_checked_at',
  'last_live_at',
  'label',
  'fingerprint',
] as const;
export type TokenSort = (typeof TOKEN_SORTS)[number];

export interface PoolTokensQuery {
  providerId: number;
  pool: string;
  match: TokenMatch;
  sort: TokenSort;
  dir: 'asc' | 'desc';
  offset: number;
  limit: number;
}

/** One page of a pool's tokens that match, sorted with nulls last, and how many match in all. */
export async function poolTokenPage(db: Executor, q: PoolTokensQuery): Promise<{ total: number; rows: TokenRow[] }> {
  const base = db.kysely
    .selectFrom('tokens')
    .where('provider_id', '=', q.providerId)
    .where('pool', '=', q.pool)
    .where(matchesTokens(q.match));
  const total = num((await base.select((eb) => eb.fn.countAll().as('n')).executeTakeFirst())?.n);
  // Nulls last in both directions, on every dialect (each sorts NULL differently by default).
  const rows = await base
    .selectAll()
    .orderBy(sql`case when ${sql.ref(q.sort)} is null then 1 else 0 end`)
    .orderBy(q.sort, q.dir)
    .orderBy('id', q.dir)
    .offset(q.offset)
    .limit(q.limit)
    .execute();
  return { total, rows };
}

/** How many tokens of a pool have each last reason. */
export async function poolReasonCounts(db: Executor, providerId: number, pool: string): Promise<Array<{ reason: string; tokens: number }>> {
  const rows = await db.kysely
    .selectFrom('tokens')
    .select((eb) => ['last_reason', eb.fn.countAll().as('n')])
    .where('provider_id', '=', providerId)
    .where('pool', '=', pool)
    .where('last_reason', 'is not', null)
    .groupBy('last_reason')
    .execute();
  return rows.map((r) => ({ reason: r.last_reason!, tokens: num(r.n) }));
}

/** How many tokens of a pool match, and the highest id among them. */
export async function countMatchingTokens(
  db: Executor,
  q: { providerId: number; pool: string; match: TokenMatch },
): Promise<{ count: number; maxId: number | null }> {
  const r = await db.kysely
    .selectFrom('tokens')
    .select((eb) => [eb.fn.countAll().as('n'), eb.fn.max('id').as('max_id')])
    .where('provider_id', '=', q.providerId)
    .where('pool', '=', q.pool)
    .where(matchesTokens(q.match))
    .executeTakeFirst();
  return { count: num(r?.n), maxId: r?.max_id == null ? null : num(r.max_id) };
}
