import type { EngineContext } from '../context.js';
import type { Provider } from '../db/providers.js';
import { recordHeld } from '../db/events.js';
import { countPruneCandidates, flagTokens, lastAnswersOutsideRun, pruneCandidates, type CandidateQuery } from '../db/pruning.js';
import type { TokenRow } from '../db/schema.js';
import type { Logger } from '../logger.js';
import { mask } from '../secret.js';
import { configuredSources } from '../sources/index.js';
import { removeFromSources } from '../sources/remove.js';
import { decidePruning } from './policy.js';
import type { ProviderRunSummary, RunRequest, RunTally } from './types.js';

const PAGE = 500;
const LISTED = 100;

/**
 * Steps 5 and 6 of a run for one provider, once its checks are written: decide by the safety
 * rules, then flag or delete the tokens this run confirmed dead (at their source too), then
 * let each source settle (One-API's channels). Selecting and recording stay separate steps of the engine.
 */
export async function pruneProvider(
  ctx: EngineContext,
  run: { runId: number; req: RunRequest; log: Logger },
  provider: Provider,
  summary: ProviderRunSummary,
  tally: RunTally,
): Promise<void> {
  const { prune } = ctx.config;
  const verdicts: CandidateQuery['verdicts'] = prune.exhausted ? ['dead', 'exhausted'] : ['dead'];
  // A run scoped to one pool (a legacy request) or with tokens not due yet sees a slice of the
  // provider; the breaker judges the provider, so the rest counts with its last answer.
  const outside =
    prune.mode === 'off'
      ? { dead: 0, judged: 0 }
      : await lastAnswersOutsideRun(ctx.db, { runId: run.runId, providerId: provider.id, verdicts });
  const decision = decidePruning({
    mode: prune.mode,
    maxRatio: prune.maxRatio,
    forcePrune: run.req.forcePrune ?? false,
    unreachable: summary.unreachable,
    unreliable: summary.unreliable,
    confirmed: tally.confirmed + outside.dead,
    judged: tally.judged + outside.judged,
  });
  const query: CandidateQuery = {
    runId: run.runId,
    providerId: provider.id,
    pool: run.req.pool,
    after: prune.after,
    states: decision.action === 'delete' ? ['active', 'suspect', 'invalid'] : ['active', 'suspect'],
    verdicts,
  };
  if (decision.action === 'hold') {
    summary.held = decision.rule === 'canary' ? tally.distrusted : await countPruneCandidates(ctx.db, query);
    summary.heldReason = decision.reason;
    if (decision.rule !== 'canary' && summary.held > 0) await recordHeldTokens(ctx, query, decision.reason);
    if (decision.rule === 'breaker' || summary.held > 0) {
      run.log.warn(
        { held: summary.held, rule: decision.rule },
        `pruning held: ${decision.reason}; after a look, tschk check --force-prune overrides`,
      );
    }
  } else if (decision.action !== 'none') {
    if (decision.overrode) run.log.warn({ rule: decision.overrode }, 'pruning although a safety rule would hold it: --force-prune');
    await act(ctx, run.log, provider, summary, decision.action, query);
  }
  if (summary.checked > 0) {
    for (const source of configuredSources(ctx.config))
      await source.settle?.(ctx, provider, { runId: run.runId, pool: run.req.pool }, run.log);
  }
}

/** A `held` event for each token whose pruning a safety rule holds back (once per stretch of holds). */
async function recordHeldTokens(ctx: EngineContext, query: CandidateQuery, reason: string): Promise<void> {
  for (let afterId = 0; ;) {
    const page = await pruneCandidates(ctx.db, { ...query, afterId, limit: PAGE });
    if (page.length === 0) break;
    await recordHeld(ctx.db, page, { reason, runId: query.runId });
    afterId = page[page.length - 1]!.id;
    if (page.length < PAGE) break;
  }
}

async function act(
  ctx: EngineContext,
  log: Logger,
  provider: Provider,
  summary: ProviderRunSummary,
  mode: 'flag' | 'delete',
  query: CandidateQuery,
): Promise<void> {
  const now = new Date();
  let flaggedInstead = 0;
  for (let afterId = 0; ;) {
    const page = await pruneCandidates(ctx.db, { ...query, afterId, limit: PAGE });
    if (page.length === 0) break;
    afterId = page[page.length - 1]!.id;
    let pruned = page;
    if (mode === 'flag')
      await flagTokens(
        ctx.db,
        page.map((t) => t.id),
        now,
        { runId: query.runId },
      );
    else {
      const kept = await deleteEverywhere(ctx, log, provider, page, now, query.runId);
      flaggedInstead += kept.flagged;
      pruned = page.filter((t) => !kept.alreadyFlagged.has(t.id));
    }
    summary.pruned += pruned.length;
    for (const t of pruned.slice(0, LISTED - summary.prunedTokens.length)) {
      summary.prunedTokens.push({ id: t.id, pool: t.pool, mask: mask(t.secret), fingerprint: t.fingerprint });
    }
    if (page.length < PAGE) break;
  }
  if (summary.pruned > 0) {
    const fingerprints = summary.prunedTokens.map((t) => t.fingerprint);
    if (mode === 'flag') log.info({ pruned: summary.pruned, fingerprints }, 'confirmed dead tokens flagged invalid');
    else if (flaggedInstead === 0)
      log.info({ pruned: summary.pruned, fingerprints }, 'confirmed dead tokens deleted, kept in token_archive');
    else
      log.info(
        { pruned: summary.pruned, flaggedInstead, fingerprints },
        'confirmed dead tokens deleted (kept in token_archive), or flagged invalid where their source could not be changed',
      );
  }
}

/**
 * Each token leaves its source; one that could not (its file or key changed meanwhile, or its
 * file cannot be rewritten) is flagged instead. One already flagged by an earlier run stays as it
 * was: it is no news, and its invalid_since keeps its date.
 */
async function deleteEverywhere(
  ctx: EngineContext,
  log: Logger,
  provider: Provider,
  tokens: TokenRow[],
  now: Date,
  runId: number,
): Promise<{ flagged: number; alreadyFlagged: Set<number> }> {
  const kept = await removeFromSources(ctx, provider, tokens, 'pruned', log, now, { runId });
  const alreadyFlagged = new Set(kept.filter((t) => t.state === 'invalid').map((t) => t.id));
  const flagged = kept.filter((t) => !alreadyFlagged.has(t.id)).map((t) => t.id);
  await flagTokens(ctx.db, flagged, now, { runId, reason: 'kept_at_source' });
  return { flagged: flagged.length, alreadyFlagged };
}
