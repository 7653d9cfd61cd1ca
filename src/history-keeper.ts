import type { Db } from './db/connect.js';
import type { OffThreadCheckpoints } from './db/dialect.js';
import { reasonNames } from './db/history.js';
import {
  finishRollupDay,
  firstCheckAt,
  historyTokenPage,
  readState,
  ROLLED_UNTIL,
  ROLLUP_TOKEN,
  rollUpTokens,
  trimChecks,
  trimEvents,
  trimRollups,
} from './db/retention.js';
import { DAY_MS, dayNumber } from './db/rollups.js';
import { trimRuns } from './db/runs.js';
import type { Logger } from './logger.js';

// Glossary. A *pass* of the history keeper rolls up finished UTC days into `token_daily`,
// deletes raw checks older than TSCHK_HISTORY_DAYS and rollups and events older than
// TSCHK_ROLLUP_DAYS. It is made of *steps*: one short transaction
// each, with a pause after it, so that the event loop, the HTTP answers and a run's writes go on
// in between; and a mark in the database says what is done, so that a pass resumes where a
// stopped one left off.

export interface KeeperOptions {
  historyDays: number;
  rollupDays: number;
  logger: Logger;
  now?: () => Date;
  /** Stops the pass between two steps. */
  signal?: AbortSignal;
  /** Extends the lease the pass holds; false when it was lost: the pass stops. */
  renew?: () => Promise<boolean>;
  renewEveryMs?: number;
  /** How long one step should take; its size follows. Default: 3 ms on SQLite, 100 ms elsewhere. */
  stepMs?: number;
  /** SQLite: how often the WAL is copied back into the file during the pass (default 50 ms). */
  checkpointEveryMs?: number;
  /** Tests: how long a copy may take before its thread is given up (default 10 s). */
  checkpointAnswerMs?: number;
  /** Tests: the size (tokens, rows) of every first step; later ones follow the time they take. */
  firstStepSize?: number;
  /** Tests: runs after every step (a throw there is a crash half-way). */
  afterStep?: (kind: StepKind) => void | Promise<void>;
}

export type StepKind = 'rollup' | 'trim' | 'rollups' | 'events' | 'runs' | 'vacuum';

export interface KeeperReport {
  rolledUp: number;
  removed: number;
  rollupsRemoved: number;
  eventsRemoved: number;
  runsRemoved: number;
  pagesFreed: number;
  steps: number;
  longestStepMs: number;
  /** What the longest step did. */
  longestStepKind?: StepKind;
  /** Stopped early (shutdown, or the lease went to another process): the next pass goes on. */
  stopped: boolean;
}

/** A day is rolled up this long after it ended: late batches and clocks a little behind are in. */
export const ROLLUP_MARGIN_MS = 3_600_000;
const ROLLUP_PAGE_MAX = 500;
const WAL_LIMIT_BYTES = 64 * 2 ** 20;
/**
 * How often the WAL is copied back during a pass. After a copy that empties it, the next commit
 * starts the WAL again and fsyncs its header, on the event loop: not after every step.
 */
const CHECKPOINT_EVERY_MS = 50;
/** A run's writes wait for a checkpoint at most this long: one stuck on a failing disk does not hold them. */
const CHECKPOINT_HOLD_MS = 1_000;

/**
 * Pure: the size of the next step, from how long the last one took — halved when it took
 * half again the target, grown by half when it took less than half of it.
 */
export function nextStepSize(size: number, tookMs: number, targetMs: number, min = 1, max = 5_000): number {
  if (tookMs > targetMs * 1.5) return Math.max(min, Math.floor(size / 2));
  if (tookMs < targetMs / 2) return Math.min(max, Math.ceil(size * 1.5));
  return size;
}

/** Pure: what a pass may do at `now`. Days are UTC day numbers. */
export function retentionBounds(now: Date, historyDays: number, rollupDays: number) {
  const today = dayNumber(now.getTime());
  return {
    /** Raw checks before this instant go (once their day is rolled up). */
    cutoff: new Date(now.getTime() - historyDays * DAY_MS),
    /** Rollups of days before this one go; such days are not rolled up at all. */
    firstRollupDay: today - rollupDays + 1,
    /** The last day that may be rolled up now. */
    lastRollupDay: dayNumber(now.getTime() - ROLLUP_MARGIN_MS) - 1,
  };
}

class Pass {
  readonly report: KeeperReport = {
    rolledUp: 0,
    removed: 0,
    rollupsRemoved: 0,
    eventsRemoved: 0,
    runsRemoved: 0,
    pagesFreed: 0,
    steps: 0,
    longestStepMs: 0,
    stopped: false,
  };
  private lastRenew = performance.now();
  private readonly targetMs: number;
  /** SQLite: the checkpoints another thread runs for this pass. */
  checkpoints: OffThreadCheckpoints | undefined;
  private lastCheckpoint = performance.now();

  constructor(
    readonly db: Db,
    readonly opts: KeeperOptions,
  ) {
    // SQLite's statements block the process: small steps, as one may take several times the target.
    this.targetMs = opts.stepMs ?? (db.dialect.name === 'sqlite' ? 3 : 100);
  }

  /**
   * One step, timed, followed by a pause as long as it took (at most 50 ms): half the database time
   * stays free. The pause is a timer, so HTTP answers and a run's writes waiting for the
   * connection get the event loop before the next step. On SQLite the WAL is copied back now and
   * then by another thread, and the pass and a run's history writes wait for it (without blocking
   * the loop): a copy that writers overtake does not empty the WAL, which then grows.
   */
  async step<T>(kind: StepKind, fn: () => Promise<T>, size?: { value: number }): Promise<T> {
    const began = performance.now();
    const result = await fn();
    const spent = this.took(kind, began);
    this.report.steps++;
    await this.opts.afterStep?.(kind);
    if (size) size.value = nextStepSize(size.value, spent, this.targetMs);
    const pause = new Promise((resolve) => setTimeout(resolve, Math.min(50, Math.max(1, Math.round(spent)))));
    const due = this.checkpoints && performance.now() - this.lastCheckpoint >= (this.opts.checkpointEveryMs ?? CHECKPOINT_EVERY_MS);
    const checkpoints = due ? this.checkpoints : undefined;
    await Promise.all([pause, checkpoints && this.db.writePause.during(() => checkpoints.checkpoint(), CHECKPOINT_HOLD_MS)]);
    if (due) this.lastCheckpoint = performance.now();
    return result;
  }

  private took(kind: StepKind, began: number): number {
    const ms = performance.now() - began;
    if (ms > this.report.longestStepMs) {
      this.report.longestStepMs = ms;
      this.report.longestStepKind = kind;
    }
    return ms;
  }

  /** Whether the pass may go on: not stopping, and still holding its lease. */
  async goOn(): Promise<boolean> {
    if (this.opts.signal?.aborted) return this.stop();
    if (this.opts.renew && performance.now() - this.lastRenew >= (this.opts.renewEveryMs ?? 10_000)) {
      this.lastRenew = performance.now();
      if (!(await this.opts.renew())) return this.stop();
    }
    return true;
  }

  private stop(): false {
    this.report.stopped = true;
    return false;
  }
}

/**
 * One pass of the history keeper; see the glossary above. On SQLite another thread copies the WAL
 * back into the file meanwhile, the last time when the pass ends (freed pages leave the file then).
 */
export async function keepHistory(db: Db, opts: KeeperOptions): Promise<KeeperReport> {
  const pass = new Pass(db, opts);
  const upkeep = db.dialect.fileUpkeep;
  await upkeep?.limitWal(db.kysely, WAL_LIMIT_BYTES);
  pass.checkpoints = await upkeep?.offThreadCheckpoints(
    db.kysely,
    (err) =>
      opts.logger.warn(
        { err: err instanceof Error ? err.message : String(err) },
        'history upkeep: the checkpoint thread failed; SQLite copies the WAL back at commits again',
      ),
    opts.checkpointAnswerMs,
  );
  let stepFailed = false;
  try {
    const bounds = retentionBounds((opts.now ?? (() => new Date()))(), opts.historyDays, opts.rollupDays);
    if (!(await rollUp(pass, bounds))) return pass.report;
    if (!(await trimRaw(pass, bounds))) return pass.report;
    if (!(await trimLongView(pass, bounds))) return pass.report;
    await vacuum(pass);
    return pass.report;
  } catch (err) {
    stepFailed = true;
    throw err;
  } finally {
    await pass.checkpoints?.stop().catch((err: unknown) => {
      // The step's own error is the one to tell; this one comes after it.
      if (!stepFailed) throw err;
      opts.logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'history upkeep: ending the checkpoints failed');
    });
  }
}

type Bounds = ReturnType<typeof retentionBounds>;

/** The first day at or after `day` (or at all) that has raw checks, or undefined. */
async function nextDayWithChecks(db: Db, day?: number): Promise<number | undefined> {
  const at = await firstCheckAt(db, day === undefined ? undefined : new Date(day * DAY_MS));
  return at ? dayNumber(at.getTime()) : undefined;
}

/**
 * Rolls up the finished days not rolled up yet, oldest first, and deletes in the same step the
 * raw checks of those days that are past the cutoff (a lowered TSCHK_HISTORY_DAYS).
 */
async function rollUp(pass: Pass, b: Bounds): Promise<boolean> {
  const { db } = pass;
  const rolledUntil = await readState(db.kysely, ROLLED_UNTIL);
  let after = (await readState(db.kysely, ROLLUP_TOKEN)) ?? 0;
  let day = await nextDayWithChecks(db, Math.max(rolledUntil ?? b.firstRollupDay, b.firstRollupDay));
  if (day === undefined) return true;
  if (day !== rolledUntil) after = 0;
  const reasons = await reasonNames(db);
  const size = { value: pass.opts.firstStepSize ?? 100 };
  while (day !== undefined && day <= b.lastRollupDay) {
    for (;;) {
      if (!(await pass.goOn())) return false;
      // The day's checks of a page are summed up here, on the event loop: at most 500 tokens' worth.
      size.value = Math.min(size.value, ROLLUP_PAGE_MAX);
      const page = await historyTokenPage(db, after, size.value);
      if (page.length === 0) break;
      const r = await pass.step('rollup', () => rollUpTokens(db, day!, page, b.cutoff, reasons), size);
      pass.report.rolledUp += r.rollups;
      pass.report.removed += r.removed;
      after = page[page.length - 1]!.tokenId;
    }
    await finishRollupDay(db, day);
    day = await nextDayWithChecks(db, day + 1);
    after = 0;
  }
  return true;
}

/**
 * Deletes raw checks past the cutoff of days already rolled up (or too old to be): the oldest day
 * first, a page of tokens at a time. A token's rows of one day sit together in the table, and
 * neighbouring tokens' rows of one hour sit together in the time index, so a step reads only what
 * it deletes and dirties few pages of either.
 */
async function trimRaw(pass: Pass, b: Bounds): Promise<boolean> {
  const { db } = pass;
  const rolledUntil = (await readState(db.kysely, ROLLED_UNTIL)) ?? -Infinity;
  const bound = Math.min(b.cutoff.getTime(), Math.max(rolledUntil, b.firstRollupDay) * DAY_MS);
  const size = { value: pass.opts.firstStepSize ?? 20 };
  for (let day = await nextDayWithChecks(db); day !== undefined && day * DAY_MS < bound; day = await nextDayWithChecks(db, day + 1)) {
    const from = new Date(day * DAY_MS);
    const before = new Date(Math.min((day + 1) * DAY_MS, bound));
    for (let after = 0; ;) {
      if (!(await pass.goOn())) return false;
      const page = await historyTokenPage(db, after, size.value);
      if (page.length === 0) break;
      const ids = page.map((t) => t.tokenId);
      pass.report.removed += await pass.step('trim', () => trimChecks(db, ids, before, from), size);
      after = ids[ids.length - 1]!;
    }
  }
  return true;
}

/** Rollups and events older than TSCHK_ROLLUP_DAYS, and runs older than TSCHK_HISTORY_DAYS. */
async function trimLongView(pass: Pass, b: Bounds): Promise<boolean> {
  const { db } = pass;
  const size = { value: pass.opts.firstStepSize ?? 500 };
  for (let after = 0; ;) {
    if (!(await pass.goOn())) return false;
    const page = await historyTokenPage(db, after, size.value);
    if (page.length === 0) break;
    const ids = page.map((t) => t.tokenId);
    pass.report.rollupsRemoved += await pass.step('rollups', () => trimRollups(db, ids, b.firstRollupDay), size);
    after = ids[ids.length - 1]!;
  }
  const events = { value: pass.opts.firstStepSize ?? 500 };
  for (;;) {
    if (!(await pass.goOn())) return false;
    const removed = await pass.step('events', () => trimEvents(db, new Date(b.firstRollupDay * DAY_MS), events.value), events);
    pass.report.eventsRemoved += removed;
    if (removed === 0) break;
  }
  pass.report.runsRemoved = await pass.step('runs', () => trimRuns(db, b.cutoff));
  return true;
}

/**
 * SQLite files made with incremental vacuum give their free pages back, a few at a time: moving
 * a page from the end of the file costs far more than the ~20 µs of one already at the end, so
 * the number of pages a step frees follows the time the last one took.
 */
async function vacuum(pass: Pass): Promise<void> {
  const { db } = pass;
  const upkeep = db.dialect.fileUpkeep;
  if (!upkeep) return;
  const size = { value: pass.opts.firstStepSize ?? 8 };
  for (;;) {
    size.value = Math.min(size.value, 128);
    const free = await upkeep.freePages(db.kysely);
    if (free === 0 || !(await pass.goOn())) return;
    const pages = Math.min(size.value, free);
    await pass.step(
      'vacuum',
      async () => {
        for (let i = 0; i < pages; i++) await upkeep.vacuumPage(db.kysely);
      },
      size,
    );
    pass.report.pagesFreed += pages;
  }
}
