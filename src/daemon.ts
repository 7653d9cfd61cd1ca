import { setMaxListeners } from 'node:events';
import { Agent, type Dispatcher } from 'undici';
import type { Config } from './config.js';
import { openDatabase, type Db } from './db/connect.js';
import { faultLogging } from './db/fault-logging.js';
import { trimHistory } from './db/history.js';
import { migrateToLatest } from './db/migrate.js';
import { redactDatabaseUrl } from './db/url.js';
import { abortStaleRuns } from './db/runs.js';
import { RunCoordinator } from './engine/coordinator.js';
import { API_TOKEN_VARIABLES } from './http/auth.js';
import { startHttpServer, type HttpServer } from './http/server.js';
import type { EngineContext, EngineEvents, RunRequest, RunSummary } from './engine/run.js';
import type { Logger } from './logger.js';
import { notificationObserver } from './notify/index.js';
import { Metrics } from './metrics.js';
import { Scheduler } from './scheduler.js';
import { syncSources } from './sources/index.js';

export interface DaemonOptions {
  logger: Logger;
  /** Tests may bring their own undici dispatcher. */
  dispatcher?: Dispatcher;
  /** Extra observers of checks and runs (metrics and notifications are added by the daemon itself). */
  observers?: EngineEvents[];
}

/** Everything a part of the daemon needs: the database, the logger, the engine. */
export interface AppContext {
  config: Readonly<Config>;
  db: Db;
  logger: Logger;
  runs: RunCoordinator;
  engine: EngineContext;
  metrics: Metrics;
}

/** Trims history once a day at a quiet minute. */
const TRIM_CRON = '17 3 * * *';

export class Daemon {
  private scheduler: Scheduler | undefined;
  private stopping: Promise<void> | undefined;
  private http: HttpServer | undefined;

  private constructor(
    readonly context: AppContext,
    /** Aborted when shutdown begins: runs take no new tokens. */
    private readonly stopController: AbortController,
    /** Aborted when the grace period is over: checks in flight are abandoned. */
    private readonly abortController: AbortController,
    private readonly ownsDispatcher: boolean,
  ) {}

  /** Opens and migrates the database, closes runs a crash left open, applies declared providers. */
  static async create(config: Readonly<Config>, opts: DaemonOptions): Promise<Daemon> {
    const logger = opts.logger;
    const db = openDatabase(config.database.url, faultLogging(logger));
    try {
      const applied = await migrateToLatest(db);
      if (applied.length > 0) logger.info({ migrations: applied }, 'database migrated');
      const stale = await abortStaleRuns(db);
      if (stale > 0) logger.warn({ runs: stale }, 'closed runs left open by a previous process as aborted');
      await syncSources({ db, config, logger });
    } catch (err) {
      await db.close();
      throw err;
    }
    const dispatcher =
      opts.dispatcher ??
      new Agent({ connections: Math.max(config.concurrency, config.providerConcurrency), keepAliveTimeout: 10_000 });
    const stopController = new AbortController();
    const abortController = new AbortController();
    // Every check waiting out a back-off or a Retry-After pause listens to it (sleep); dozens at
    // once is the normal case, not a leak.
    setMaxListeners(0, abortController.signal);
    const metrics = new Metrics(db, config.lowBalance);
    const engine: EngineContext = {
      db,
      config,
      logger,
      dispatcher,
      stopSignal: stopController.signal,
      abortSignal: abortController.signal,
      observers: [metrics, ...(opts.observers ?? []), notificationObserver({ db, config, logger, dispatcher, abortSignal: abortController.signal })],
    };
    const context: AppContext = { config, db, logger, runs: new RunCoordinator(engine), engine, metrics };
    logger.info({ database: redactDatabaseUrl(config.database.url), dialect: db.dialect.name }, 'database ready');
    return new Daemon(context, stopController, abortController, !opts.dispatcher);
  }

  /** Starts the HTTP server, the schedule (and the start-up run when configured). */
  async start(): Promise<void> {
    const { config, logger } = this.context;
    if (config.http.apiToken === undefined) {
      logger.warn(`no API secret: the legacy and /api/v1 routes answer 503 until ${API_TOKEN_VARIABLES} is set`);
    }
    this.http = await startHttpServer(this.context);
    logger.info({ url: this.http.url }, 'HTTP listening');
    this.scheduler = new Scheduler(
      [
        { name: 'check', cron: config.cron, run: () => this.runNow({ trigger: 'cron' }) },
        { name: 'trim-history', cron: TRIM_CRON, run: () => this.trimHistory() },
      ],
      config.timezone,
      logger,
    );
    this.scheduler.start();
    await this.trimHistory();
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

  runNow(req: RunRequest): Promise<RunSummary> {
    if (this.stopping) return Promise.reject(new Error('tschk is shutting down'));
    return this.context.runs.request(req);
  }

  async trimHistory(): Promise<number> {
    const { config, db, logger } = this.context;
    const cutoff = new Date(Date.now() - config.historyDays * 86_400_000);
    const removed = await trimHistory(db, cutoff);
    if (removed > 0) logger.info({ removed, olderThan: cutoff.toISOString() }, 'history trimmed');
    return removed;
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
      await this.scheduler?.stop();
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
      if (this.ownsDispatcher) await this.context.engine.dispatcher.close();
      await httpClosed;
      await db.close();
      logger.info('stopped');
    })();
    return this.stopping;
  }
}
