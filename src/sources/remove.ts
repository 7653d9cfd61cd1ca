import type { SourceContext } from '../context.js';
import { inTransaction } from '../db/connect.js';
import { flagTokens } from '../db/pruning.js';
import type { Provider } from '../db/providers.js';
import type { TokenRow } from '../db/schema.js';
import { archiveAndDeleteTokens, type EventCause } from '../db/tokens.js';
import type { Logger } from '../logger.js';
import { sourceOf } from './index.js';
import { SourceNotEdited, type Source, type SourceEdit } from './types.js';

/**
 * Tokens leave tschk and the place they came from, whoever asks (a prune in delete mode, a user's
 * removal). For each edit its source plans (a file, One-API's keys): one transaction archives the
 * leaving rows with `reason` and deletes them, flags the staying ones where the source wants it,
 * and inside it the source applies its own edit; a source that changed meanwhile undoes it all.
 * Returns the tokens still at their source: a file or key edited meanwhile, or a New-API
 * multi-key channel that holds them.
 */
export async function removeFromSources(
  ctx: SourceContext,
  provider: Provider,
  tokens: readonly TokenRow[],
  reason: string,
  log: Logger,
  now = new Date(),
  cause: EventCause = {},
): Promise<TokenRow[]> {
  const own: TokenRow[] = [];
  const bySource = new Map<Source, TokenRow[]>();
  for (const t of tokens) {
    const source = sourceOf(ctx.config, t.source);
    if (source) bySource.set(source, [...(bySource.get(source) ?? []), t]);
    else own.push(t);
  }
  const kept: TokenRow[] = [];
  if (own.length > 0) await applyEdit(ctx, provider, { tokens: own, staying: [] }, reason, log, now, cause);
  for (const [source, rows] of bySource) {
    const logged = { ...ctx, logger: log };
    for (const edit of await source.planRemoval(logged, provider, rows, log))
      kept.push(...(await applyEdit(logged, provider, edit, reason, log, now, cause)));
  }
  return kept;
}

async function applyEdit(
  ctx: SourceContext,
  provider: Provider,
  edit: SourceEdit,
  reason: string,
  log: Logger,
  now: Date,
  cause: EventCause,
): Promise<readonly TokenRow[]> {
  const exclusive = edit.exclusive ?? (<T>(fn: () => Promise<T>) => fn());
  return exclusive(async () => {
    const staying = new Set(edit.staying);
    const ids = (rows: readonly TokenRow[]) => rows.map((t) => t.id);
    try {
      await inTransaction(ctx.db, async (tx) => {
        // The one place a removal is recorded: whatever tells of it (the archive row, the event) is written
        // here, in the transaction that deletes the rows. The source's edit runs inside it and
        // undoes it by throwing (One-API commits its own first: see sources/oneapi/index.ts).
        await archiveAndDeleteTokens(
          tx,
          edit.tokens.filter((t) => !staying.has(t)),
          provider.name,
          reason,
          now,
          cause,
        );
        if (edit.flagStaying) await flagTokens(tx, ids(edit.staying), now, { ...cause, reason });
        await edit.apply?.();
      });
    } catch (err) {
      if (!(err instanceof SourceNotEdited)) throw err;
      log[err.level](err.fields, err.message);
      if (edit.flagStaying) await flagTokens(ctx.db, ids(edit.tokens), now, { ...cause, reason });
      return edit.tokens;
    }
    await edit.after?.();
    return edit.staying;
  });
}
