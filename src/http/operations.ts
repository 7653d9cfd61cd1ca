import { kindRequirements } from '../checkers/index.js';
import type { HttpContext } from '../context.js';
import { findProvider, findProviderById, type Provider } from '../db/providers.js';
import type { RunTrigger, TokenRow, TokenSource } from '../db/schema.js';
import { findToken, importTokens, listTokens, type ImportResult, type TokenMatch } from '../db/tokens.js';
import { RunBusyError } from '../engine/coordinator.js';
import { RunScopeError } from '../engine/run.js';
import { describeLineProblem, describeSecret, splitTokens, UnusableTokensError } from '../secret.js';
import { removeFromSources } from '../sources/remove.js';
import type { EventActor } from '../db/schema.js';
import { restoreArchived, RestoreError, type RestoreResult } from '../sources/restore.js';
import { charCount, LIMITS, quote } from '../validation.js';
import { HttpError } from './router.js';

/**
 * What changes state over HTTP, whoever asks: `/api/v1` (a script with the bearer) and the web
 * console (a signed-in browser) call these same functions, which call the same code as the CLI.
 */

const badRequest = (message: string) => new HttpError(400, 'bad_request', message);

export async function providerByName(app: HttpContext, name: string, status: 400 | 404): Promise<Provider> {
  const p = await findProvider(app.db, name);
  if (!p) throw new HttpError(status, 'unknown_provider', `unknown provider ${quote(name)}; see GET /api/v1/providers`);
  return p;
}

export interface RunOrder {
  trigger: RunTrigger;
  provider?: string;
  pool?: string;
  force?: boolean;
  forcePrune?: boolean;
  selection?: TokenMatch;
}

/**
 * Starts a run (or joins the one in flight that covers it) and resolves with its id once its row
 * exists; 409 while a run that does not cover it is in flight, rather than queue behind it.
 */
export async function startRun(app: HttpContext, order: RunOrder): Promise<number> {
  if (order.provider !== undefined) {
    const p = await providerByName(app, order.provider, 400);
    if (!p.enabled) throw new HttpError(409, 'provider_disabled', `provider '${p.name}' is disabled`);
  }
  const started = app.runs.start(order, { whenBusy: 'refuse' });
  started.summary.catch(() => {}); // its outcome is in check_runs and the log
  try {
    return await started.runId;
  } catch (err) {
    if (err instanceof RunScopeError) throw new HttpError(409, 'run_refused', err.message);
    if (err instanceof RunBusyError) {
      throw new HttpError(409, 'run_in_flight', `${err.message} and does not cover this request; try again when it is done`);
    }
    throw err;
  }
}

/** What `importTokens` will store of the entries, checked against the width of `tokens.secret`. */
function checkTokenLengths(entries: readonly string[], wholeEntries: boolean | undefined): void {
  entries.forEach((entry, i) => {
    for (const token of wholeEntries ? [entry.trim()] : splitTokens(entry)) {
      const n = charCount(token);
      if (n > LIMITS.tokenChars) throw badRequest(`tokens[${i}] holds a token of ${n} characters; a token is at most ${LIMITS.tokenChars}`);
    }
  });
}

/** `tschk tokens import`'s rules: duplicates skipped and counted, `T1,T2` is two tokens (unless the kind keeps entries whole). */
export async function importIntoPool(
  app: HttpContext,
  order: { provider: Provider; pool: string; entries: string[]; source: TokenSource; label?: string; expect?: 'live' | 'dead' },
): Promise<ImportResult> {
  const wholeEntries = kindRequirements(order.provider.kind)?.wholeEntries;
  if (order.entries.flatMap(splitTokens).length === 0) throw badRequest('tokens holds no token');
  checkTokenLengths(order.entries, wholeEntries);
  try {
    return await importTokens(app.db, {
      providerId: order.provider.id,
      pool: order.pool,
      entries: order.entries,
      source: order.source,
      wholeEntries,
      label: order.label ?? null,
      expect: order.expect ?? null,
    });
  } catch (err) {
    if (!(err instanceof UnusableTokensError)) throw err;
    const [first] = err.found;
    throw badRequest(`tokens[${first!.index}] cannot be a token: it ${describeLineProblem(first!.problem)}`);
  }
}

const STILL_AT_SOURCE =
  'the token is still in its source (its file was edited meanwhile or cannot be rewritten, see the log; or it is a line of a New-API multi-key channel): try again or remove it there';

/** Removes a token from tschk and its source, archived with reason `user_removed`. */
export async function removeToken(
  app: HttpContext,
  id: number,
  actor: EventActor = 'api',
): Promise<{ id: number; mask: string; fingerprint: string }> {
  const token = await findToken(app.db, id);
  if (!token) throw new HttpError(404, 'unknown_token', `no token with id ${id}`);
  const provider = (await findProviderById(app.db, Number(token.provider_id)))!;
  const kept = await removeFromSources(app, provider, [token], 'user_removed', app.logger, new Date(), { actor });
  if (kept.length > 0) throw new HttpError(409, 'still_at_source', STILL_AT_SOURCE);
  return { id: Number(token.id), ...describeSecret(token.secret) };
}

const BULK_PAGE = 500;

/**
 * Removes every token of a pool matching the filter, a page at a time in id order (keyset): each
 * statement names at most one page of ids, however many tokens match.
 */
export async function removeMatching(
  app: HttpContext,
  scope: { provider: Provider; pool: string; match: TokenMatch },
  actor: EventActor = 'api',
): Promise<{ removed: number; kept: number }> {
  let removed = 0;
  let kept = 0;
  for (let afterId = 0; ;) {
    const page: TokenRow[] = await listTokens(app.db, {
      providerId: scope.provider.id,
      pool: scope.pool,
      afterId,
      limit: BULK_PAGE,
      match: scope.match,
    });
    if (page.length === 0) break;
    afterId = Number(page[page.length - 1]!.id);
    const left = await removeFromSources(app, scope.provider, page, 'user_removed', app.logger, new Date(), { actor });
    kept += left.length;
    removed += page.length - left.length;
    if (page.length < BULK_PAGE) break;
  }
  return { removed, kept };
}

/** `tschk tokens restore`: back where it came from; 404 when nothing is archived under it, 409 when it cannot go back. */
export async function restoreToken(
  app: HttpContext,
  fingerprint: string,
  scope: { provider?: string; pool?: string } = {},
  actor: EventActor = 'api',
): Promise<RestoreResult> {
  try {
    return await restoreArchived(app, fingerprint, scope, new Date(), actor);
  } catch (err) {
    if (err instanceof RestoreError) {
      throw /^no archived token/.test(err.message)
        ? new HttpError(404, 'not_archived', err.message)
        : new HttpError(409, 'cannot_restore', err.message);
    }
    throw err;
  }
}
