import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { hostname } from 'node:os';
import type { Dispatcher } from 'undici';
import type { Config } from './config.js';
import { openDatabase, type Db } from './db/connect.js';
import { faultLogging } from './db/fault-logging.js';
import { migrateToLatest } from './db/migrate.js';
import type { OnStatement } from './db/observed-dialect.js';
import { redactDatabaseUrl } from './db/url.js';
import { forgetDaemon, heartbeat, readLease, releaseLease, renewLease, tryAcquireLease, type Holder } from './db/lease.js';
import { keepHistory, type KeeperReport } from './history-keeper.js';
import { abortOrphanedRuns, runningRuns } from './db/runs.js';
import { RunCoordinator, TickTakenError, type StartOptions } from './engine/coordinator.js';
import { API_TOKEN_VARIABLES } from './http/auth.js';
import type { HttpServer } from './http/server.js';
import type { AppContext } from './context.js';
import type { EngineEvents, RunRequest, RunSummary } from './engine/types.js';
import type { Clock } from './engine/limits.js';
import type { Logger } from './logger.js';
import { notificationObserver } from './notify/index.js';
import { lazyAgent } from './lazy-agent.js';
import { Metrics } from './metrics.js';
import { Scheduler } from './scheduler.js';
import { createCheckers } from './checkers/index.js';
import { OneApiConnection } from './sources/oneapi/database.js';
import { syncDeclaredProviders } from './sources/declared.js';
import { syncSources } from './sources/index.js';

/** The start-up pass of the history keeper begins this long after the HTTP server listens. */
const KEEPER_START_DELAY_MS = 60_000;

export interface DaemonOptions {
  logger: Logger;
  /** Tests may bring their own undici dispatcher. */
  dispatcher?: Dispatcher;
  /** Extra observers of checks and runs (metrics and notifications are added by the daemon itself). */
  observers?: EngineEvents[];
  /** Tests may bring a clock that moves only when they say (back-offs, Retry-After pauses). */
  clock?: Clock;
  /** Tests may move the schedule's time themselves: the cron ticks of replicas, in the order they choose. */
  scheduleClock?: Clock;
  /** Tests may look again for another process's run more often than every third of the lease. */
  leasePollMs?: number;
  /** Tests may count the statements sent to tschk's database (to tell which requests reach it). */
  onStatement?: OnStatement;
}

export type { AppContext } from './context.js';

/** How often a daemon tells it is alive and looks at the run lease: a third of the lease. */
const watchEveryMs = (config: Readonly<Config>) => Math.max(50, Math.min(5_000, Math.floor(config.runLeaseMs / 3)));

/** The daemon's context, with the concrete coordinator and metrics it built. */
type DaemonContext = AppContext & { runs: RunCoordinator; metrics: Metrics };

export class Daemon {
  private scheduler: Scheduler | undefined;
  private stopping: Promise<void> | undefined;
  private http: HttpServer | undefined;
  private startupSync: Promise<void> = Promise.resolve();
  private watcher: NodeJS.Timeout | undefined;
  private watching = false;
  /** The history keeper's pass in flight, and what stops it between two steps. */
  private keeping: Promise<number> | undefined;
  private readonly keeperStop = new AbortController();
  private keeperTimer: NodeJS.Timeout | undefined;
  /** What the last pass of the history keeper in this process did. */
  lastHistoryPass: KeeperReport | undefined;
  private toldReplicas = false;
  private readonly startedAt = new Date();

  private constructor(
    readonly context: DaemonContext,
    /** Aborted when shutdown begins: runs take no new tokens. */
    private readonly stopController: AbortController,
    /** Aborted when the grace period is over: checks in flight are abandoned. */
    private readonly abortController: AbortController,
    private readonly ownsDispatcher: boolean,
    private readonly scheduleClock: Clock | undefined,
  ) {}

  /** Opens and migrates the database, closes runs a crash left open, applies declared providers. */
  static async create(config: Readonly<Config>, opts: DaemonOptions): Promise<Daemon> {
    const logger = opts.logger;
    const db = openDatabase(config.database.url, { ...faultLogging(logger), onStatement: opts.onStatement });
    const holder: Holder = { id: `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`, host: hostname(), pid: process.pid };
    try {
      const applied = await migrateToLatest(db);
      if (applied.length > 0) logger.info({ migrations: applied }, 'database migrated');
      await closeOrphanedRuns(db, holder, config.runLeaseMs, logger);
      await syncDeclaredProviders(db, config);
    } catch (err) {
      await db.close();
      throw err;
    }
    const dispatcher =
      opts.dispatcher ?? lazyAgent({ connections: Math.max(config.concurrency, config.providerConcurrency), keepAliveTimeout: 10_000 });
    const stopController = new AbortController();
    const abortController = new AbortController();
    // Every check waiting out a back-off or a Retry-After pause listens to it (sleep); dozens at
    // once is the normal case, not a leak.
    setMaxListeners(0, abortController.signal);
    const metrics = new Metrics(db, config.lowBalance);
    const engine = {
      db,
      config,
      logger,
      dispatcher,
      oneApi: config.oneApi && new OneApiConnection(config.oneApi, logger),
      checkers: createCheckers(),
      stopSignal: stopController.signal,
      abortSignal: abortController.signal,
      clock: opts.clock,
      observers: [
        metrics,
        ...(opts.observers ?? []),
        notificationObserver({ db, config, logger, dispatcher, abortSignal: abortController.signal }),
      ],
    };
    const lease = { holder, ttlMs: config.runLeaseMs, pollMs: opts.leasePollMs ?? watchEveryMs(config) };
    const context: DaemonContext = { ...engine, runs: new RunCoordinator(engine, lease), metrics };
    logger.info({ database: redactDatabaseUrl(config.database.url), dialect: db.dialect.name }, 'database ready');
    const daemon = new Daemon(context, stopController, abortController, !opts.dispatcher, opts.scheduleClock);
    // Token files and One-API can be large, slow or stuck: HTTP does not wait for them, stop() does.
    daemon.startupSync = syncSources(engine).catch((err: unknown) =>
      logger.error({ err: err instanceof Error ? err.message : String(err) }, 'start-up sync of the sources failed'),
    );
    return daemon;
  }

  /** Settles when the start-up sync of the token sources is over (nothing else waits for it). */
  get sourcesSynced(): Promise<void> {
    return this.startupSync;
  }

  /** Starts the HTTP server, the schedule (and the start-up run when configured). */
  async start(): Promise<void> {
    const { config, logger } = this.context;
    if (config.http.apiToken === undefined) {
      logger.warn(`no API secret: the legacy and /api/v1 routes answer 503 until ${API_TOKEN_VARIABLES} is set`);
    }
    // Loaded here: `tschk check` builds a Daemon too, and never serves (the routes and the console).
    const { startHttpServer } = await import('./http/server.js');
    this.http = await startHttpServer(this.context);
    logger.info({ url: this.http.url }, 'HTTP listening');
    this.scheduler = new Scheduler(
      [
        { name: 'check', cron: config.cron, run: (tick) => this.cronRun(tick) },
        { name: 'trim-history', cron: config.trimCron, run: (tick) => this.trimHistory(tick) },
      ],
      config.timezone,
      logger,
      this.scheduleClock,
    );
    this.scheduler.start();
    await this.watchReplicas();
    this.watcher = setInterval(() => void this.watchReplicas(), watchEveryMs(config));
    this.watcher.unref();
    // In the background, a little after start-up: a pass over a large history takes minutes, in
    // steps; start-up and the first run wait for none of it.
    this.keeperTimer = setTimeout(() => {
      void this.trimHistory().catch((err) =>
        logger.error(
          { err: err instanceof Error ? err.message : String(err) },
          'history upkeep failed; the next pass goes on from where it stopped',
        ),
      );
    }, KEEPER_START_DELAY_MS);
    this.keeperTimer.unref();
    if (config.runOnStart) {
      void this.runNow({ trigger: 'startup' }).catch((err) =>
        logger.error({ err: err instanceof Error ? err.message : String(err) }, 'start-up run failed'),
      );
    }
  }

  /** Where the HTTP server listens, once started (the real port when TSCHK_HTTP_PORT is 0). */
  get httpAddress(): { host: string; port: number; url: string } | undefined {
    return this.http && { host: this.http.host, port: this.http.port, url: this.http.url };
  }

  runNow(req: RunRequest, opts?: StartOptions): Promise<RunSummary> {
    if (this.stopping) return Promise.reject(new Error('tschk is shutting down'));
    return this.context.runs.request(req, opts);
  }

  private async cronRun(tick: Date): Promise<void> {
    try {
      await this.runNow({ trigger: 'cron', tick });
    } catch (err) {
      if (!(err instanceof TickTakenError)) throw err;
      this.context.logger.debug({ tick: tick.toISOString() }, 'cron tick taken by another process');
    }
  }

  /**
   * One pass of the history keeper (rollups, retention, file upkeep), unless another process is
   * doing it or took this tick; returns how many raw checks it removed.
   */
  trimHistory(tick?: Date): Promise<number> {
    if (this.keeping) return this.keeping;
    this.keeping = this.keepHistory(tick).finally(() => {
      this.keeping = undefined;
    });
    return this.keeping;
  }

  private async keepHistory(tick?: Date): Promise<number> {
    const { config, db, logger } = this.context;
    const { holder, ttlMs } = this.context.runs.lease;
    if (this.stopping || !(await tryAcquireLease(db, 'trim', holder, ttlMs, { tick }))) return 0;
    try {
      const report = await keepHistory(db, {
        historyDays: config.historyDays,
        rollupDays: config.rollupDays,
        logger,
        signal: this.keeperStop.signal,
        renew: () => renewLease(db, 'trim', holder.id, ttlMs),
        renewEveryMs: Math.max(50, Math.floor(ttlMs / 3)),
      });
      this.lastHistoryPass = report;
      logger.info(
        { ...report, longestStepMs: Math.round(report.longestStepMs), ...(tick ? { tick: tick.toISOString() } : {}) },
        'history trimmed',
      );
      return report.removed;
    } finally {
      await releaseLease(db, 'trim', holder.id).catch(() => undefined);
    }
  }

  /**
   * Every few seconds: tells the database this daemon is alive, and takes over the run of a
   * process that died holding the run lease (it is closed as aborted; the new run checks what it
   * left, the tokens it checked are not due any more).
   */
  private async watchReplicas(): Promise<void> {
    const { db, logger, runs, config } = this.context;
    if (this.stopping || this.watching) return;
    this.watching = true;
    try {
      const others = await heartbeat(db, runs.lease.holder, 3 * watchEveryMs(config) + config.runLeaseMs, this.startedAt);
      if (others.length > 0 && !this.toldReplicas) {
        this.toldReplicas = true;
        const processes = others.map((o) => `${o.host} (pid ${o.pid})`);
        if (db.dialect.name === 'sqlite') {
          logger.warn(
            { others: processes },
            'another tschk daemon uses this SQLite file: this one stands by as a replica (runs still go one at a time)',
          );
        } else {
          logger.info({ others: processes }, 'other tschk daemons use this database: runs are shared, one at a time');
        }
      }
      const lease = await readLease(db, 'run');
      if (lease?.holder && lease.expired && !runs.busy) {
        logger.warn(
          { runId: lease.runId, host: lease.host, pid: lease.pid },
          'the process holding the run lease stopped renewing it: taking over',
        );
        void this.runNow({ trigger: lease.trigger ?? 'cron', provider: lease.provider ?? undefined, pool: lease.pool ?? undefined }).catch(
          (err) => logger.error({ err: err instanceof Error ? err.message : String(err) }, 'take-over run failed'),
        );
      }
    } catch (err) {
      logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'replica check failed; retrying');
    } finally {
      this.watching = false;
    }
  }

  /**
   * Stops scheduling, lets checks in flight finish within the grace period, then abandons them;
   * closes the HTTP pools and the database. Idempotent: every caller awaits the same stop.
   */
  stop(graceMs = this.context.config.shutdownGraceMs): Promise<void> {
    this.stopping ??= (async () => {
      const { logger, runs, db } = this.context;
      // Stop accepting first; requests in flight finish while the run winds down.
      const httpClosed = this.http?.close(graceMs);
      this.stopController.abort();
      this.keeperStop.abort();
      clearTimeout(this.keeperTimer);
      clearInterval(this.watcher);
      this.scheduler?.stop();
      await this.startupSync;
      await this.keeping?.catch(() => undefined);
      if (runs.busy) {
        logger.info({ graceMs }, 'waiting for the run in flight');
        let timer: NodeJS.Timeout | undefined;
        const grace = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), graceMs)));
        if ((await Promise.race([runs.idle(), grace])) === 'late') {
          logger.warn('grace period over: abandoning checks in flight');
          this.abortController.abort();
          await runs.idle();
        }
        clearTimeout(timer);
      }
      // What lives long is released in the reverse order of Daemon.create.
      if (this.ownsDispatcher) await this.context.dispatcher.close();
      await httpClosed;
      await this.context.oneApi?.close();
      if (this.watcher) await forgetDaemon(db, this.context.runs.lease.holder.id).catch(() => {});
      await db.close();
      logger.info('stopped');
    })();
    return this.stopping;
  }
}

/**
 * Closes runs left `running` by a process that is gone: a holder that is alive keeps the lease,
 * so a `running` row is an orphan only while the lease can be taken.
 */
async function closeOrphanedRuns(db: Db, holder: Holder, ttlMs: number, logger: Logger): Promise<void> {
  if ((await runningRuns(db)).length === 0) return;
  if (!(await tryAcquireLease(db, 'run', holder, ttlMs))) return;
  try {
    const orphans = await abortOrphanedRuns(db);
    if (orphans.length > 0)
      logger.warn({ runs: orphans.map((r) => Number(r.id)) }, 'closed runs left open by a stopped process as aborted');
  } finally {
    await releaseLease(db, 'run', holder.id);
  }
}
