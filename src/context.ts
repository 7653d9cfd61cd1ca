import type { Dispatcher } from 'undici';
import type { Config } from './config.js';
import type { Db } from './db/connect.js';
import type { Clock } from './engine/limits.js';
import type { EngineEvents, RunControl } from './engine/types.js';
import type { CheckerRegistry } from './checkers/index.js';
import type { Logger } from './logger.js';
import type { OneApiConnection } from './sources/oneapi/database.js';

/**
 * What the daemon holds for as long as it lives, built once in `Daemon.create`. No part of tschk
 * takes all of it: each area names below the slice it uses, so a test or the CLI can give it just
 * that.
 */
export interface AppContext {
  config: Readonly<Config>;
  db: Db;
  logger: Logger;
  /** One undici Agent: a connection pool per upstream origin. */
  dispatcher: Dispatcher;
  /** Set when shutdown begins: no new checks start, a sync stops between files and batches. */
  stopSignal?: AbortSignal;
  /** Set when the shutdown grace period is over: checks in flight are abandoned. */
  abortSignal?: AbortSignal;
  /** Metrics, notifications: each is told about every check and every finished run. */
  observers: readonly EngineEvents[];
  /** Jitter of back-offs; tests make it fixed. */
  random?: () => number;
  /** Back-off waits, Retry-After pauses, a file's re-read: the real clock unless a test brings its own. */
  clock?: Clock;
  /** One-API's database, when configured: opened once, closed at stop. Absent (the CLI): opened per call. */
  oneApi?: OneApiConnection;
  /** The checkers, with the DeepSeek account sessions they keep: the daemon's, for its life. */
  checkers: CheckerRegistry;
  runs: RunControl;
  metrics: { render(): Promise<{ contentType: string; text: string }> };
}

/** The token sources (the environment, legacy files, One-API): they read and edit where tokens live. */
export type SourceContext = Pick<AppContext, 'db' | 'config' | 'logger' | 'stopSignal' | 'oneApi' | 'clock'>;

/** A run: checks, history, pruning (which edits the sources). */
export type EngineContext = SourceContext & Pick<AppContext, 'dispatcher' | 'abortSignal' | 'observers' | 'random' | 'checkers'>;

/** Closing a run's row, which may have to wait for the database. */
export type CloseRunContext = Pick<AppContext, 'db' | 'logger' | 'stopSignal'>;

/** The HTTP server and its routes: everything but the engine's own observers. */
export type HttpContext = Omit<AppContext, 'observers' | 'random' | 'clock'>;
