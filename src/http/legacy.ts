import { LEGACY_SERVICES, legacyVariable } from '../config.js';
import type { HttpContext } from '../context.js';
import { findProvider, type Provider } from '../db/providers.js';
import type { Verdict } from '../db/schema.js';
import { hasDueTokens, poolVerdicts } from '../db/tokens.js';
import { RunScopeError, type RunSummary } from '../engine/run.js';
import { syncSources } from '../sources/index.js';
import { HttpError, reply, type HttpRequest, type Reply, type Route } from './router.js';

/** The original's answer, field for field (docs/legacy-rest.md); `unknown*` were added by tschk. */
export interface LegacyPoolAnswer {
  ServiceName: string;
  tokenStatus: 'tokentrue' | 'tokenfalse';
  totalTokenCount: number;
  invalidCount: number;
  invalidTokenPositions: number[];
  validTokenPercentage: string;
  unknownCount: number;
  unknownTokenPositions: number[];
  message: string;
}

/**
 * The answer for a pool, from each token's current verdict in pool order (null: never checked,
 * which counts as unknown). dead and exhausted are invalid; unknown is neither valid nor invalid.
 */
export function legacyPoolAnswer(serviceName: string, tokens: ReadonlyArray<{ last_verdict: Verdict | null }>): LegacyPoolAnswer {
  const invalid: number[] = [];
  const unknown: number[] = [];
  let live = 0;
  let dead = 0;
  let exhausted = 0;
  tokens.forEach((t, i) => {
    switch (t.last_verdict) {
      case 'live':
        live++;
        break;
      case 'dead':
        dead++;
        invalid.push(i + 1);
        break;
      case 'exhausted':
        exhausted++;
        invalid.push(i + 1);
        break;
      default:
        unknown.push(i + 1);
    }
  });
  const total = tokens.length;
  const counts = [`${live} live`, `${dead} dead`, ...(exhausted > 0 ? [`${exhausted} exhausted`] : []), `${unknown.length} unknown`];
  return {
    ServiceName: serviceName,
    tokenStatus: total > 0 && 2 * live >= total ? 'tokentrue' : 'tokenfalse',
    totalTokenCount: total,
    invalidCount: invalid.length,
    invalidTokenPositions: invalid,
    validTokenPercentage: `${total === 0 ? 0 : Math.round((live * 10_000) / total) / 100}%`,
    unknownCount: unknown.length,
    unknownTokenPositions: unknown,
    message: `checked ${total} token${total === 1 ? '' : 's'}: ${counts.join(', ')}`,
  };
}

interface LegacyService {
  provider: Provider;
  /** `LLM-Deep` for the original's keys, the provider's name otherwise. */
  serviceName: string;
}

/**
 * The original's keys (`deep`, `mita`, …, any letter case) and any free-api provider by its name.
 * A known key whose variable is not set is a 404 naming that variable.
 */
async function resolveService(app: HttpContext, service: string): Promise<LegacyService> {
  const legacy = LEGACY_SERVICES.find((s) => s.name === service.toLowerCase());
  const provider = await findProvider(app.db, legacy?.name ?? service);
  if (provider?.kind === 'free-api') return { provider, serviceName: legacy ? `LLM-${legacy.suffix}` : provider.name };
  if (legacy) {
    throw new HttpError(
      404,
      'service_not_configured',
      `service '${legacy.name}' is not configured: set ${legacyVariable(legacy.suffix)} to its free-api /token/check URL`,
    );
  }
  throw new HttpError(
    404,
    'unknown_service',
    `unknown service '${service}'; accepted: ${LEGACY_SERVICES.map((s) => s.name).join(', ')} or the name of a configured free-api provider`,
  );
}

async function answerPool(app: HttpContext, { provider, serviceName }: LegacyService, pool: string): Promise<Reply> {
  return reply(200, legacyPoolAnswer(serviceName, await poolVerdicts(app.db, provider.id, pool)));
}

/** Checks the pool (joining a run in flight, reusing verdicts fresher than TSCHK_MIN_INTERVAL_S), then answers. */
async function checkPool(req: HttpRequest, app: HttpContext, pool: string): Promise<Reply> {
  const service = await resolveService(app, req.params.service!);
  if (!service.provider.enabled) {
    throw new HttpError(409, 'provider_disabled', `provider '${service.provider.name}' is disabled; enable it to check it`);
  }
  // A burst of monitors asking about fresh verdicts: answer them without a run (and its row).
  await syncSources(app, { provider: service.provider.name, pool });
  const checkedBefore = new Date(Date.now() - app.config.minIntervalS * 1000);
  if (!(await hasDueTokens(app.db, { providerId: service.provider.id, pool, checkedBefore }))) return answerPool(app, service, pool);
  let summary: RunSummary;
  try {
    summary = await app.runs.request({ trigger: 'api', provider: service.provider.name, pool });
  } catch (err) {
    if (err instanceof RunScopeError) throw new HttpError(409, 'run_refused', err.message);
    throw err;
  }
  if (summary.status === 'aborted') throw new HttpError(503, 'shutting_down', 'tschk is shutting down; the check was not finished');
  if (summary.status === 'failed') {
    throw new HttpError(500, 'run_failed', `check run ${summary.runId} failed; the daemon log has the details`);
  }
  return answerPool(app, service, pool);
}

/** For monitors that poll often: stored verdicts, no check. */
async function cachedPool(req: HttpRequest, app: HttpContext, pool: string): Promise<Reply> {
  const cached = req.query.get('cached');
  if (cached !== '1' && cached !== 'true') {
    throw new HttpError(405, 'method_not_allowed', 'use POST to check the pool now, or GET with ?cached=1 for the stored verdicts', {
      Allow: 'POST',
    });
  }
  const service = await resolveService(app, req.params.service!);
  await syncSources(app, { provider: service.provider.name, pool });
  return answerPool(app, service, pool);
}

const BASE = '/api/LLM_TokenCheck/Check/{service}';

export const legacyRoutes: Route[] = [
  { method: 'POST', path: BASE, auth: 'bearer', handler: (req, app) => checkPool(req, app, 'default') },
  { method: 'POST', path: `${BASE}/free`, auth: 'bearer', handler: (req, app) => checkPool(req, app, 'free') },
  { method: 'GET', path: BASE, auth: 'bearer', handler: (req, app) => cachedPool(req, app, 'default') },
  { method: 'GET', path: `${BASE}/free`, auth: 'bearer', handler: (req, app) => cachedPool(req, app, 'free') },
];
