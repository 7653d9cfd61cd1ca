import { checkerFor, checkSafely } from '../checkers/index.js';
import type { CheckContext, Checker, CheckResult } from '../checkers/types.js';
import type { EngineContext } from '../context.js';
import type { Db } from '../db/connect.js';
import type { CheckRecord } from '../db/history.js';
import { findProvider, listProviders, type Provider } from '../db/providers.js';
import { closeRun, countsOf, openRun, zeroCounts, type ProviderOutcome, type RunCounts } from '../db/runs.js';
import type { Verdict } from '../db/schema.js';
import { selectDueTokens, type DueToken, type TokenMatch } from '../db/tokens.js';
import type { Logger } from '../logger.js';
import { describeSecret, mask, scrubSecret } from '../secret.js';
import { syncSources } from '../sources/index.js';
import { CLOSE_RETRY, closeRunWhenPossible } from './close-run.js';
import { ProviderGate, realClock, Semaphore } from './limits.js';
import { lowBalanceOf } from './low-balance.js';
import { backoffDelay, judgeAnswer, MAX_RETRY_AFTER_S } from './policy.js';
import { pruneProvider } from './prune.js';
import type { ProviderRunSummary, RunOptions, RunRequest, RunSummary, RunTally } from './types.js';
import { BatchWriter } from './writer.js';

export type { EngineContext } from '../context.js';
export type { EngineEvents, ProviderRunSummary, RunOptions, RunRequest, RunSummary, TokenRef } from './types.js';

export class RunScopeError extends Error {
  override name = 'RunScopeError';
}

const PAGE_SIZE = 500;
/** Changes listed by name in a summary; the counts stay exact beyond it. */
const MAX_LISTED = 100;
const LATENCY_SAMPLE = 1_000;

export function runScope(req: Pick<RunRequest, 'provider' | 'pool' | 'selection'>): string {
  const where = !req.provider ? (req.pool ? `all/${req.pool}` : 'all') : req.pool ? `${req.provider}/${req.pool}` : req.provider;
  if (req.selection === undefined) return where;
  const filter = Object.entries(req.selection)
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(' ');
  return `${where} matching ${filter || 'all'}`.slice(0, 255);
}

/** One run: check every due token in scope, write history and state, close the run row. */
export async function runChecks(ctx: EngineContext, req: RunRequest, opts: RunOptions = {}): Promise<RunSummary> {
  await syncSources(ctx, req);
  const providers = await providersInScope(ctx.db, req);
  const started = new Date();
  const scope = runScope(req);
  const runId = await openRun(ctx.db, req.trigger, scope, started);
  opts.onRunOpened?.(runId);
  const log = ctx.logger.child({ runId });
  log.info(
    { scope, trigger: req.trigger, ...(req.tick ? { tick: req.tick.toISOString() } : {}), force: req.force ?? false },
    'run started',
  );

  // A test's clock also paces the waits between tries of a write the database did not take.
  const dbSleep = ctx.clock && ((ms: number, signal?: AbortSignal) => ctx.clock!.sleep(ms, signal));
  const writer = new BatchWriter(ctx.db, { lease: opts.lease }, undefined, ctx.config.historyFlushMs, { sleep: dbSleep });
  const globalLimit = new Semaphore(ctx.config.concurrency);
  let status: RunSummary['status'] = 'done';
  let error: string | undefined;
  const summaries: ProviderRunSummary[] = [];
  const outcomes: ProviderOutcome[] = [];
  try {
    const results = await Promise.allSettled(
      providers.map((p) => checkProvider(ctx, { runId, started, req, writer, globalLimit, log }, p)),
    );
    await writer.close();
    results.forEach((r, i) => {
      if (r.status === 'rejected') throw r.reason;
      summaries.push(r.value);
      outcomes.push(outcomeOf(providers[i]!.id, r.value));
    });
    if (ctx.stopSignal?.aborted) status = 'aborted';
  } catch (err) {
    status = 'failed';
    error = err instanceof Error ? err.message : String(err);
    await writer.close().catch(() => {});
    log.error({ err: error }, 'run failed');
  }

  const totals = zeroCounts();
  for (const s of summaries) for (const k of Object.keys(totals) as Array<keyof RunCounts>) totals[k] += s[k];
  const finished = new Date();
  await closeRunWhenPossible(
    ctx,
    runId,
    () => closeRun(ctx.db, runId, { status, counts: totals, error: error ?? null, providers: outcomes }, finished),
    { ...CLOSE_RETRY, sleep: dbSleep },
  );
  const summary: RunSummary = {
    runId,
    trigger: req.trigger,
    scope,
    status,
    startedAt: started.toISOString(),
    finishedAt: finished.toISOString(),
    durationMs: finished.getTime() - started.getTime(),
    ...totals,
    providers: summaries,
    ...(error ? { error } : {}),
  };
  for (const s of summaries) {
    log.info(
      {
        provider: s.provider,
        ...countsOf(s),
        lowBalance: s.lowBalance.length,
        durationMs: s.durationMs,
      },
      'provider summary',
    );
    if (s.lowBalance.length > 0) {
      const below = s.lowBalance.map((k) => ({ mask: k.mask, fingerprint: k.fingerprint, balance: k.balance, currency: k.currency }));
      log.warn({ provider: s.provider, below }, 'balance below TSCHK_LOW_BALANCE');
    }
  }
  log.info({ status, scope, ...totals, durationMs: summary.durationMs }, 'run finished');
  for (const observer of ctx.observers) {
    try {
      await observer.runFinished?.(summary);
    } catch (err) {
      log.error({ err: err instanceof Error ? err.message : String(err) }, 'run observer failed');
    }
  }
  return summary;
}

/** A provider's summary before any check: zero counts, empty lists. */
export function emptyProviderSummary(provider: string, kind: string): ProviderRunSummary {
  return {
    provider,
    kind,
    ...zeroCounts(),
    durationMs: 0,
    unreachable: false,
    unreliable: false,
    medianLatencyMs: null,
    becameSuspect: [],
    confirmedDead: [],
    recovered: [],
    prunedTokens: [],
    lowBalance: [],
  };
}

function outcomeOf(providerId: number, s: ProviderRunSummary): ProviderOutcome {
  return {
    providerId,
    provider: s.provider,
    ...countsOf(s),
    unreachable: s.unreachable,
    unreliable: s.unreliable,
    heldReason: s.heldReason ?? null,
    error: s.error ?? null,
  };
}

async function providersInScope(db: Db, req: RunRequest): Promise<Provider[]> {
  if (req.provider) {
    const p = await findProvider(db, req.provider);
    if (!p) throw new RunScopeError(`unknown provider '${req.provider}'`);
    if (!p.enabled) throw new RunScopeError(`provider '${req.provider}' is disabled`);
    return [p];
  }
  return (await listProviders(db)).filter((p) => p.enabled);
}

interface RunState {
  runId: number;
  started: Date;
  req: RunRequest;
  writer: BatchWriter;
  globalLimit: Semaphore;
  log: Logger;
}

async function checkProvider(ctx: EngineContext, run: RunState, provider: Provider): Promise<ProviderRunSummary> {
  const began = performance.now();
  const summary = emptyProviderSummary(provider.name, provider.kind);
  const log = run.log.child({ provider: provider.name });
  const checker = checkerFor(provider.kind, ctx.checkers);
  if (!checker || (checker.requiresUrl && !provider.checkUrl)) {
    summary.error = checker ? 'provider has no check URL' : `no checker for kind '${provider.kind}'`;
    log.error({ kind: provider.kind }, `provider skipped: ${summary.error}`);
    return summary;
  }
  const gate = new ProviderGate(ctx.clock);
  const latencies: number[] = [];
  const workers = Math.max(1, provider.concurrency ?? ctx.config.providerConcurrency);
  // --force-prune follows a held run whose tokens were just checked: it asks them again.
  const forced = run.req.force || run.req.forcePrune;
  const checkedBefore = forced ? null : new Date(run.started.getTime() - ctx.config.minIntervalS * 1000);

  const statePolicy = { pruneAfter: ctx.config.prune.after, recover: ctx.config.prune.recover, pruneExhausted: ctx.config.prune.exhausted };
  const tally: RunTally = { confirmed: 0, judged: 0, distrusted: 0 };
  let answered = 0;

  const check = (token: DueToken) => checkWithRetries(ctx, checker, provider, token.secret, gate, run.globalLimit);
  const recordOne = async (token: DueToken, result: CheckResult) => {
    if (result.reason === 'aborted') return; // not an answer from anyone: no history row
    if (result.verdict !== 'unknown') answered++;
    if (token.expect && disagrees(token.expect, result.verdict)) {
      if (!summary.unreliable) {
        log.warn(
          { canary: describeSecret(token.secret), expected: token.expect, got: result.verdict },
          'canary disagrees: dead verdicts of this provider are not trusted this run',
        );
      }
      summary.unreliable = true;
    }
    const {
      verdict,
      reason,
      transition: t,
      judged,
      confirmed,
      distrusted,
    } = judgeAnswer(
      { expect: token.expect, state: token.state, consecutiveDead: token.consecutive_dead },
      result,
      // --force-prune: a human looked, the verdicts stand; the canary's warning above still tells.
      { unreliable: summary.unreliable, forcePrune: run.req.forcePrune ?? false },
      statePolicy,
    );
    if (judged) tally.judged++;
    if (confirmed) tally.confirmed++;
    if (distrusted) tally.distrusted++;
    summary.checked++;
    summary[verdict]++;
    const ref = () => ({ id: token.id, pool: token.pool, mask: mask(token.secret), fingerprint: token.fingerprint });
    if (t.becameSuspect && summary.becameSuspect.length < MAX_LISTED) summary.becameSuspect.push(ref());
    if (confirmed && summary.confirmedDead.length < MAX_LISTED) summary.confirmedDead.push(ref());
    if (t.recovered && summary.recovered.length < MAX_LISTED) summary.recovered.push(ref());
    const low = lowBalanceOf({ ...result, verdict }, ctx.config.lowBalance);
    if (low && summary.lowBalance.length < MAX_LISTED) summary.lowBalance.push({ ...ref(), ...low });
    if (latencies.length < LATENCY_SAMPLE) latencies.push(result.latencyMs);
    for (const observer of ctx.observers) observer.checked?.(provider, verdict, result.latencyMs);
    const record: CheckRecord = {
      runId: run.runId,
      tokenId: token.id,
      providerId: provider.id,
      fingerprint: token.fingerprint,
      checkedAt: new Date(),
      verdict,
      reason,
      httpStatus: result.httpStatus,
      latencyMs: result.latencyMs,
      balance: result.balance ?? null,
      currency: result.currency ?? null,
      detail: result.detail ? scrubSecret(result.detail, token.secret) : null,
      prev: { state: token.state, consecutiveDead: token.consecutive_dead },
      next: { state: t.state, consecutiveDead: t.consecutiveDead, invalidSince: t.invalidSince },
    };
    await run.writer.add(record);
  };

  // A canary tests the provider, not its pool: a run scoped to one pool asks them all.
  const due = (canaries: boolean) =>
    dueTokens(ctx, {
      providerId: provider.id,
      pool: canaries ? undefined : run.req.pool,
      match: run.req.selection,
      checkedBefore,
      canaries,
    });
  // Canaries first: their answers decide whether this provider's dead verdicts can be trusted.
  await drain(due(true), workers, check, recordOne);
  await drain(due(false), workers, check, recordOne);

  // Dead answers distrusted because of a canary are answers: that provider is reachable.
  summary.unreachable = summary.checked > 0 && answered === 0;
  if (summary.unreachable) log.warn({ checked: summary.checked }, 'provider unreachable: every check was unknown, no token judged');
  if (!ctx.stopSignal?.aborted) {
    await run.writer.flush();
    try {
      await pruneProvider(ctx, { runId: run.runId, req: run.req, log }, provider, summary, tally);
    } catch (err) {
      summary.error = `pruning failed: ${err instanceof Error ? err.message : String(err)}`;
      log.error({ err: summary.error }, 'pruning failed part-way; the checks are recorded, the rest is retried next run');
    }
  }
  summary.medianLatencyMs = median(latencies);
  summary.durationMs = Math.round(performance.now() - began);
  return summary;
}

function disagrees(expect: 'live' | 'dead', verdict: Verdict): boolean {
  return (expect === 'live' && verdict === 'dead') || (expect === 'dead' && verdict === 'live');
}

/** Streams due tokens page by page; stops early when shutdown begins. */
async function* dueTokens(
  ctx: EngineContext,
  q: { providerId: number; pool?: string; match?: TokenMatch; checkedBefore: Date | null; canaries: boolean },
): AsyncGenerator<DueToken> {
  let afterId = 0;
  for (;;) {
    if (ctx.stopSignal?.aborted) return;
    const page = await selectDueTokens(ctx.db, { ...q, afterId, limit: PAGE_SIZE });
    for (const token of page) {
      if (ctx.stopSignal?.aborted) return;
      yield token;
    }
    if (page.length < PAGE_SIZE) return;
    afterId = page[page.length - 1]!.id;
  }
}

/**
 * `workers` loops pull from one iterator (an async generator queues concurrent next() calls).
 * A loop records an answer only after it has sent its next request: see `afterRequestsSent`.
 */
async function drain<T, R>(
  items: AsyncIterator<T>,
  workers: number,
  check: (item: T) => Promise<R>,
  record: (item: T, result: R) => Promise<void>,
): Promise<void> {
  const loop = async () => {
    let recorded: Promise<void> = Promise.resolve();
    for (let next = await items.next(); !next.done; next = await items.next()) {
      const item = next.value;
      const result = await check(item);
      await recorded;
      recorded = afterRequestsSent().then(() => record(item, result));
      recorded.catch(() => {}); // awaited above or below; not an unhandled rejection meanwhile
    }
    await recorded;
  };
  await Promise.all(Array.from({ length: workers }, loop));
}

/**
 * Answers arrive in bursts, and undici writes a request on a reused connection only in the
 * check phase (setImmediate) after the answers of the burst are handled. Recording an answer
 * one turn of the event loop later keeps that work from delaying every request of the burst.
 */
function afterRequestsSent(): Promise<void> {
  return new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
}

async function checkWithRetries(
  ctx: EngineContext,
  checker: Checker,
  provider: Provider,
  secret: string,
  gate: ProviderGate,
  globalLimit: Semaphore,
): Promise<CheckResult> {
  const checkCtx: CheckContext = {
    dispatcher: ctx.dispatcher,
    timeoutMs: ctx.config.timeoutMs,
    signal: ctx.abortSignal,
    logger: ctx.logger,
  };
  const target = { providerName: provider.name, kind: provider.kind, checkUrl: provider.checkUrl };
  for (let attempt = 0; ; attempt++) {
    await gate.wait(ctx.abortSignal);
    await globalLimit.acquire();
    let result: CheckResult;
    try {
      result = await checkSafely(checker, secret, target, checkCtx);
    } finally {
      globalLimit.release();
    }
    const retryable = result.verdict === 'unknown' && result.reason !== 'aborted' && result.reason !== 'bad_request';
    if (!retryable || attempt >= ctx.config.retries || ctx.abortSignal?.aborted) return result;
    if (result.retryAfterS !== undefined) {
      if (result.retryAfterS > MAX_RETRY_AFTER_S) return result;
      gate.pauseFor(result.retryAfterS * 1000);
    } else {
      await (ctx.clock ?? realClock).sleep(backoffDelay(attempt, ctx.config.retryBaseMs, ctx.random), ctx.abortSignal);
    }
  }
}

function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : Math.round((sorted[mid - 1]! + sorted[mid]!) / 2);
}
