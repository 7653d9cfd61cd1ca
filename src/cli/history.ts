import { fingerprintHasHistory, listHistory } from '../db/history.js';
import { listProviders } from '../db/providers.js';
import { findToken, findTokensByFingerprint } from '../db/tokens.js';
import { historyView } from '../views.js';
import { args, print, UsageError, type Command } from './common.js';
import { requireProvider, withDb } from './db.js';
import { table } from './table.js';

export const historyCommand: Command = async (config, rest, io) => {
  const { values } = args(rest, {
    provider: { type: 'string' },
    token: { type: 'string' },
    limit: { type: 'string' },
    json: { type: 'boolean' },
  });
  const limit = values.limit === undefined ? 50 : Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100_000)
    throw new UsageError(`--limit must be a whole number from 1 to 100000; got '${values.limit}'`);
  return withDb(config, async (db) => {
    const p = values.provider ? await requireProvider(db, values.provider) : undefined;
    let tokenId: number | undefined;
    let fingerprint: string | undefined;
    if (values.token !== undefined) {
      const t = /^\d+$/.test(values.token)
        ? await findToken(db, Number(values.token))
        : (await findTokensByFingerprint(db, values.token))[0];
      // A fingerprint finds the history of every token that had it, removed ones included.
      if (!t && !/^\d+$/.test(values.token) && (await fingerprintHasHistory(db, values.token))) fingerprint = values.token;
      else if (!t) throw new UsageError(`no token '${values.token}' (give an id or a fingerprint)`);
      else if (/^\d+$/.test(values.token)) tokenId = t.id;
      else fingerprint = t.fingerprint;
    }
    const names = new Map((await listProviders(db)).map((x) => [x.id, x.name]));
    const rows = (await listHistory(db, { providerId: p?.id, tokenId, fingerprint, limit })).map((h) => ({
      provider: names.get(h.provider_id) ?? null,
      ...historyView(h, db.dialect),
    }));
    if (values.json) return print(io, JSON.stringify(rows, null, 2));
    const line = (r: (typeof rows)[number]) => ({
      checked_at: r.checked_at,
      provider: r.provider,
      token: r.token_id,
      fingerprint: r.fingerprint,
      verdict: r.verdict,
      reason: r.reason,
      http: r.http_status,
      ms: r.latency_ms,
      balance: r.balance ? `${r.balance} ${r.currency ?? ''}`.trim() : '',
    });
    return print(io, rows.length ? table(rows.map(line)) : 'no history yet');
  });
};
