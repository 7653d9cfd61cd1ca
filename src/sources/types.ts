import type { Config } from '../config.js';
import type { SourceContext } from '../context.js';
import type { Provider } from '../db/providers.js';
import type { TokenRow, TokenSource } from '../db/schema.js';
import type { Logger } from '../logger.js';

export interface SyncScope {
  provider?: string;
  pool?: string;
}

/**
 * A place tokens live outside tschk's own table, which tschk reads and edits: the original's
 * token files, One-API's channels. The registry in `sources/index.ts` lists them; a token's
 * `tokens.source` names the one it came from.
 */
export interface Source {
  readonly name: Extract<TokenSource, 'file' | 'oneapi'>;
  /** Whether this process reads the source. Tokens of a source it does not read are rows like any other. */
  configured(config: Readonly<Config>): boolean;
  /** Step 1 of a run: brings the tokens it holds into `tokens`. A failure is logged, never thrown: the tokens keep their last known list. */
  sync(ctx: SourceContext, scope: SyncScope): Promise<void>;
  /**
   * How the tokens leave it: one edit per place that is changed at once (a file, One-API's
   * database). Tokens it no longer holds (a file tschk does not read any more) get an edit with
   * no `apply`: their row is all there is.
   */
  planRemoval(ctx: SourceContext, provider: Provider, tokens: readonly TokenRow[], log: Logger): Promise<SourceEdit[]>;
  /**
   * After a provider's run that checked some of its tokens (`pool`: the run's scope): brings the
   * source in line with their states (One-API disables a channel whose tokens are all flagged).
   */
  settle?(ctx: SourceContext, provider: Provider, run: { runId: number; pool?: string }, log: Logger): Promise<void>;
  /** Puts an archived token back at the end of its place; where it went (told to the user), or undefined when it could not. */
  restore(ctx: SourceContext, provider: Provider, archived: { sourceRef: string | null; secret: string }): Promise<string | undefined>;
}

/** One edit of a source that takes tokens out of it, run by `removeFromSources`. */
export interface SourceEdit {
  /** The tokens this edit is about. */
  tokens: readonly TokenRow[];
  /** Those that stay in the source after the edit (a New-API multi-key channel holds them). */
  staying: readonly TokenRow[];
  /** The staying tokens are flagged invalid in the same transaction (One-API disables a channel by its flagged tokens). */
  flagStaying?: boolean;
  /** Holds the source while the edit is made and synced again (a token file's lock). */
  exclusive?: <T>(fn: () => Promise<T>) => Promise<T>;
  /**
   * The source's own change, run inside tschk's transaction after the archive rows are written:
   * a `SourceNotEdited` leaves both as they were; any other error too, and is thrown on.
   */
  apply?(): Promise<void>;
  /** After tschk's transaction committed (a token file is read again). */
  after?(): Promise<void>;
}

/** The source changed under tschk, or refused the edit: nothing was changed, on either side. */
export class SourceNotEdited extends Error {
  override name = 'SourceNotEdited';
  constructor(
    message: string,
    readonly level: 'warn' | 'error',
    readonly fields: Record<string, unknown>,
  ) {
    super(message);
  }
}
