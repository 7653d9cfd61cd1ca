import type { Db } from './connect.js';
import type { TokenState, TokenStatusRow, Verdict } from './schema.js';

/** One check, as it is written: a history row and the token's new state. */
export interface CheckRecord {
  runId: number | null;
  tokenId: number;
  providerId: number;
  fingerprint: string;
  checkedAt: Date;
  verdict: Verdict;
  reason: string;
  httpStatus: number | null;
  latencyMs: number | null;
  balance: string | null;
  currency: string | null;
  detail: string | null;
  next: { state: TokenState; consecutiveDead: number; invalidSince: Date | null | undefined };
}

const CHUNK = 250;

/** Writes a batch in one transaction: committed together or not at all. */
export async function recordChecks(db: Db, records: readonly CheckRecord[]): Promise<void> {
  if (records.length === 0) return;
  const t = db.dialect.time;
  await db.kysely.transaction().execute(async (trx) => {
    for (let i = 0; i < records.length; i += CHUNK) {
      await trx
        .insertInto('token_status')
        .values(
          records.slice(i, i + CHUNK).map((r) => ({
            run_id: r.runId,
            token_id: r.tokenId,
            provider_id: r.providerId,
            fingerprint: r.fingerprint,
            checked_at: t(r.checkedAt),
            verdict: r.verdict,
            reason: r.reason,
            http_status: r.httpStatus,
            latency_ms: r.latencyMs,
            balance: r.balance,
            currency: r.currency,
            detail: r.detail,
          })),
        )
        .execute();
    }
    for (const r of records) {
      const counted = r.verdict === 'live' || r.verdict === 'exhausted';
      await trx
        .updateTable('tokens')
        .set({
          state: r.next.state,
          consecutive_dead: r.next.consecutiveDead,
          last_verdict: r.verdict,
          last_reason: r.reason,
          last_checked_at: t(r.checkedAt),
          ...(r.verdict === 'live' ? { last_live_at: t(r.checkedAt) } : {}),
          ...(r.next.invalidSince !== undefined ? { invalid_since: r.next.invalidSince && t(r.next.invalidSince) } : {}),
          ...(counted || r.balance !== null ? { balance: r.balance, currency: r.currency } : {}),
          updated_at: t(r.checkedAt),
        })
        .where('id', '=', r.tokenId)
        .execute();
    }
  });
}

export interface HistoryQuery {
  providerId?: number;
  tokenId?: number;
  limit: number;
}

export async function listHistory(db: Db, q: HistoryQuery): Promise<TokenStatusRow[]> {
  let query = db.kysely.selectFrom('token_status').selectAll();
  if (q.providerId !== undefined) query = query.where('provider_id', '=', q.providerId);
  if (q.tokenId !== undefined) query = query.where('token_id', '=', q.tokenId);
  return query.orderBy('id', 'desc').limit(q.limit).execute();
}

/** Deletes history older than the cutoff; returns how many rows went. */
export async function trimHistory(db: Db, olderThan: Date): Promise<number> {
  const r = await db.kysely.deleteFrom('token_status').where('checked_at', '<', db.dialect.time(olderThan)).executeTakeFirst();
  return Number(r.numDeletedRows);
}
