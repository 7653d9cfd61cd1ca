import { listArchive, markRestored } from '../db/archive.js';
import type { EventActor } from '../db/schema.js';
import { findProvider } from '../db/providers.js';
import { findTokensByFingerprint, importTokens } from '../db/tokens.js';
import { describeSecret } from '../secret.js';
import type { SourceContext } from '../context.js';
import { sourceOf } from './index.js';

export class RestoreError extends Error {
  override name = 'RestoreError';
}

export interface RestoreResult {
  provider: string;
  pool: string;
  mask: string;
  fingerprint: string;
  /** Where it went back: `LLM-Deep/token.json`, `One-API channel 12`, or `tokens`. */
  into: string;
  /** It was already in the pool (back in its file, imported again): only the archive row changed. */
  alreadyPresent: boolean;
}

/**
 * Brings an archived token back to where it came from — its token file, its One-API channel, or
 * tschk's own table — at the end of its pool, active, and marks its archive rows restored.
 */
export async function restoreArchived(
  ctx: SourceContext,
  fp: string,
  filter: { provider?: string; pool?: string } = {},
  now = new Date(),
  actor: EventActor | null = null,
): Promise<RestoreResult> {
  const scope = { fingerprint: fp, providerName: filter.provider, pool: filter.pool };
  const rows = await listArchive(ctx.db, { ...scope, unrestored: true });
  if (rows.length === 0) {
    const any = (await listArchive(ctx.db, scope)).length > 0;
    throw new RestoreError(
      any ? `token ${fp} was already restored` : `no archived token with fingerprint ${fp}; see tschk tokens export --archived`,
    );
  }
  const places = [...new Set(rows.map((r) => `${r.provider_name}/${r.pool}`))];
  if (places.length > 1)
    throw new RestoreError(`token ${fp} was archived from ${places.join(', ')}; choose one with --provider and --pool`);
  const row = rows[rows.length - 1]!;
  const provider = await findProvider(ctx.db, row.provider_name);
  if (!provider)
    throw new RestoreError(`provider '${row.provider_name}' no longer exists; add it again with tschk providers add, then restore`);

  const alreadyPresent = (await findTokensByFingerprint(ctx.db, row.fingerprint)).some(
    (t) => Number(t.provider_id) === provider.id && t.pool === row.pool,
  );
  let into = 'tokens';
  if (!alreadyPresent) {
    const source = sourceOf(ctx.config, row.source);
    if (source) into = (await source.restore(ctx, provider, { sourceRef: row.source_ref, secret: row.secret })) ?? into;
    // Not picked up from its source (gone, or no longer read): it goes back into tschk's own table.
    const imported = await importTokens(
      ctx.db,
      {
        providerId: provider.id,
        pool: row.pool,
        entries: [row.secret],
        wholeEntries: true,
        source: row.source === 'api' || row.source === 'console' ? row.source : 'cli',
        label: row.label,
        expect: row.expect === 'live' || row.expect === 'dead' ? row.expect : null,
      },
      now,
    );
    if (imported.added > 0) into = 'tokens';
  }
  await markRestored(
    ctx.db,
    rows.map((r) => r.id),
    now,
    actor,
  );
  return { provider: provider.name, pool: row.pool, ...describeSecret(row.secret), into, alreadyPresent };
}
