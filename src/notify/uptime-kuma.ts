import type { Config } from '../config.js';
import type { Db } from '../db/connect.js';
import { tokenCountsByPool } from '../db/tokens.js';
import type { RunSummary } from '../engine/types.js';
import type { OutgoingRequest } from './formats.js';

export type KumaTarget = Config['notify']['uptimeKuma'][number];

/** A pool's current verdicts: every token's last verdict, not only the ones this run checked. */
export interface PoolCounts {
  provider: string;
  pool: string;
  total: number;
  live: number;
  dead: number;
  exhausted: number;
  /** Includes tokens never checked yet. */
  unknown: number;
}

/** Tokens per provider, pool and last verdict; disabled tokens and providers are not part of a pool's health. */
export async function currentPoolCounts(db: Db): Promise<PoolCounts[]> {
  const pools = new Map<string, PoolCounts>();
  for (const r of await tokenCountsByPool(db, { inRotation: true })) {
    const key = `${r.provider}/${r.pool}`;
    const c = pools.get(key) ?? { provider: r.provider, pool: r.pool, total: 0, live: 0, dead: 0, exhausted: 0, unknown: 0 };
    c.total += r.n;
    c[r.verdict ?? 'unknown'] += r.n;
    pools.set(key, c);
  }
  return [...pools.values()];
}

export interface KumaPush {
  /** `all`, `deep` or `deep/free`: what the monitor watches, safe to log. */
  label: string;
  up: boolean;
  msg: string;
  pingMs: number | null;
}

export const kumaLabel = (t: Pick<KumaTarget, 'provider' | 'pool'>) =>
  t.provider === undefined ? 'all' : t.pool === undefined ? t.provider : `${t.provider}/${t.pool}`;

function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : Math.round((sorted[mid - 1]! + sorted[mid]!) / 2);
}

/**
 * Pure: the heartbeat of one monitor after a run. Counts are summed over the pools it watches
 * (every pool for the whole-run URL); it is down when the live share is below `healthyRatio`
 * (an empty pool included, like the legacy `tokenfalse`) or a provider it watches was unreachable.
 */
export function kumaPush(
  target: Pick<KumaTarget, 'provider' | 'pool'>,
  summary: RunSummary,
  pools: PoolCounts[],
  healthyRatio: number,
): KumaPush {
  const watched = (provider: string) => target.provider === undefined || target.provider === provider;
  const sum = { total: 0, live: 0, dead: 0, exhausted: 0, unknown: 0 };
  for (const p of pools) {
    if (!watched(p.provider) || (target.pool !== undefined && p.pool !== target.pool)) continue;
    for (const k of Object.keys(sum) as Array<keyof typeof sum>) sum[k] += p[k];
  }
  const ran = summary.providers.filter((p) => watched(p.provider));
  const unreachable = ran.filter((p) => p.unreachable).map((p) => p.provider);
  const healthy = sum.total > 0 && sum.live / sum.total >= healthyRatio;
  const parts = [
    sum.total === 0 ? 'no tokens' : `live ${sum.live}/${sum.total}, dead ${sum.dead}`,
    sum.exhausted > 0 ? `exhausted ${sum.exhausted}` : undefined,
    sum.total === 0 ? undefined : `unknown ${sum.unknown}`,
    unreachable.length > 0 ? `unreachable: ${unreachable.join(', ')}` : undefined,
  ];
  return {
    label: kumaLabel(target),
    up: healthy && unreachable.length === 0,
    msg: parts.filter(Boolean).join(', '),
    pingMs: median(ran.map((p) => p.medianLatencyMs).filter((ms): ms is number => ms !== null)),
  };
}

/**
 * Uptime-Kuma's push endpoint `/api/push/:pushToken` reads `status` (`up`, anything else is down),
 * `msg` and `ping` (ms) from the query, by GET or POST (louislam/uptime-kuma
 * server/routers/api-router.js). A pasted URL keeps its token; its own `?status=up&msg=OK&ping=` is replaced.
 */
export function kumaRequest(url: string, push: Pick<KumaPush, 'up' | 'msg' | 'pingMs'>): OutgoingRequest {
  const u = new URL(url);
  u.searchParams.set('status', push.up ? 'up' : 'down');
  u.searchParams.set('msg', push.msg);
  if (push.pingMs === null) u.searchParams.delete('ping');
  else u.searchParams.set('ping', String(Math.round(push.pingMs)));
  return { method: 'GET', url: u.href, headers: {} };
}
