import type { Counter, Histogram, Registry } from 'prom-client';
import type { Db } from './db/connect.js';
import { num } from './db/dialect.js';
import type { Provider } from './db/providers.js';
import { lastCompletedAt, lastFinishedRun, lastProviderOutcomes } from './db/runs.js';
import type { Verdict } from './db/schema.js';
import { balancesNotDead, tokenCountsByPool } from './db/tokens.js';
import { currencyKey, isBelowThreshold } from './engine/low-balance.js';
import type { EngineEvents, RunSummary } from './engine/types.js';
import type { Route } from './http/router.js';

const VERDICTS: readonly Verdict[] = ['live', 'dead', 'exhausted', 'unknown'];

/**
 * Prometheus series of one daemon, in its own Registry (tests run several daemons in a process).
 * Labels are providers, pools, states and verdicts only: never one series per token.
 *
 * prom-client (and the OpenTelemetry API it loads, ~90 modules) is loaded at the first check, run
 * or scrape, not at start-up: an idle daemon nobody scrapes does without it. Its process series
 * (GC, event-loop delay) count from then on.
 */
export class Metrics implements EngineEvents {
  private loading: Promise<Series> | undefined;
  private series: Series | undefined;
  /** What happened while prom-client was loading, recorded once it is. */
  private pending: ((s: Series) => void)[] = [];

  /** `lowBalance`: TSCHK_LOW_BALANCE, currency → threshold. */
  constructor(
    private readonly db: Db,
    private readonly lowBalance: ReadonlyMap<string, number> = new Map(),
  ) {}

  checked(provider: Provider, verdict: Verdict, latencyMs: number): void {
    this.record((s) => {
      s.checks.inc({ provider: provider.name, verdict });
      s.latency.observe({ provider: provider.name }, latencyMs / 1000);
    });
  }

  runFinished(summary: RunSummary): void {
    this.record((s) => {
      s.runDuration.observe(summary.durationMs / 1000);
      s.runs.inc({ trigger: summary.trigger, status: summary.status });
    });
  }

  /** The exposition text and its content type. */
  async render(): Promise<{ contentType: string; text: string }> {
    const { registry } = await this.load();
    return { contentType: registry.contentType, text: await registry.metrics() };
  }

  private record(observe: (s: Series) => void): void {
    if (this.series) return observe(this.series);
    this.pending.push(observe);
    // A load that failed is asked again by the next scrape, which answers its error.
    this.load().catch(() => {});
  }

  private load(): Promise<Series> {
    this.loading ??= import('prom-client')
      .then((prom) => {
        const series = createSeries(prom, this.db, this.lowBalance);
        this.series = series;
        for (const observe of this.pending.splice(0)) observe(series);
        return series;
      })
      .catch((err: unknown) => {
        this.loading = undefined;
        this.pending.length = 0;
        throw err;
      });
    return this.loading;
  }
}

interface Series {
  registry: Registry;
  checks: Counter<'provider' | 'verdict'>;
  latency: Histogram<'provider'>;
  runDuration: Histogram;
  runs: Counter<'trigger' | 'status'>;
}

function createSeries(prom: typeof import('prom-client'), db: Db, lowBalance: ReadonlyMap<string, number>): Series {
  const { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } = prom;
  const registry = new Registry();
  const registers = [registry];
  const checks = new Counter({
    name: 'tschk_checks_total',
    help: 'Checks made, by provider and verdict.',
    labelNames: ['provider', 'verdict'],
    registers,
  });
  const latency = new Histogram({
    name: 'tschk_check_duration_seconds',
    help: 'Time one check took, by provider.',
    labelNames: ['provider'],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40],
    registers,
  });
  // The last run's gauges are read from the database at scrape time: every replica tells the
  // same truth, whichever process ran it.
  const readOutcomes = () => lastProviderOutcomes(db);
  let outcomes: ReturnType<typeof readOutcomes> | undefined;
  const lastOutcomes = () => (outcomes ??= readOutcomes().finally(() => (outcomes = undefined)));
  new Gauge({
    name: 'tschk_last_run_checks',
    help: "Verdicts of the provider's last run.",
    labelNames: ['provider', 'verdict'],
    registers,
    async collect() {
      const rows = await lastOutcomes();
      this.reset();
      for (const r of rows) for (const verdict of VERDICTS) this.set({ provider: r.provider_name, verdict }, num(r[verdict]));
    },
  });
  new Gauge({
    name: 'tschk_last_run_pruned',
    help: "Tokens pruned (flagged or deleted) by the provider's last run.",
    labelNames: ['provider'],
    registers,
    async collect() {
      const rows = await lastOutcomes();
      this.reset();
      for (const r of rows) this.set({ provider: r.provider_name }, num(r.pruned));
    },
  });
  new Gauge({
    name: 'tschk_last_run_held',
    help: "Tokens whose pruning a safety rule held in the provider's last run.",
    labelNames: ['provider'],
    registers,
    async collect() {
      const rows = await lastOutcomes();
      this.reset();
      for (const r of rows) this.set({ provider: r.provider_name }, num(r.held));
    },
  });
  new Gauge({
    name: 'tschk_last_run_duration_seconds',
    help: 'Duration of the last finished run.',
    registers,
    async collect() {
      const last = await lastFinishedRun(db);
      this.reset();
      const started = last && db.dialect.readTime(last.started_at);
      const finished = last && db.dialect.readTime(last.finished_at);
      if (started && finished) this.set((finished.getTime() - started.getTime()) / 1000);
    },
  });
  const runDuration = new Histogram({
    name: 'tschk_run_duration_seconds',
    help: 'Duration of the runs this process ran.',
    buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600],
    registers,
  });
  const runs = new Counter({
    name: 'tschk_runs_total',
    help: 'Runs this process finished, by trigger and status.',
    labelNames: ['trigger', 'status'],
    registers,
  });
  // Read at scrape time from the database, so they are right after a restart and with other writers.
  new Gauge({
    name: 'tschk_tokens',
    help: 'Tokens by provider, pool and state.',
    labelNames: ['provider', 'pool', 'state'],
    registers,
    async collect() {
      const rows = await tokenCountsByPool(db);
      this.reset();
      const sums = new Map<string, { labels: { provider: string; pool: string; state: string }; n: number }>();
      for (const r of rows) {
        const key = `${r.provider}\n${r.pool}\n${r.state}`;
        const s = sums.get(key) ?? { labels: { provider: r.provider, pool: r.pool, state: r.state }, n: 0 };
        s.n += r.n;
        sums.set(key, s);
      }
      for (const s of sums.values()) this.set(s.labels, s.n);
    },
  });
  new Gauge({
    name: 'tschk_last_run_completed_timestamp_seconds',
    help: 'When the last run that completed (status done) finished, Unix seconds; 0 when none has.',
    registers,
    async collect() {
      const at = await lastCompletedAt(db);
      this.reset();
      if (at) this.set(at.getTime() / 1000);
    },
  });
  // A dead key's last balance is no longer spendable; an unknown answer keeps the last one read.
  const readBalances = () => balancesNotDead(db);
  // A scrape starts every collect at once: the two balance gauges share one query.
  let reading: ReturnType<typeof readBalances> | undefined;
  const balances = () => (reading ??= readBalances().finally(() => (reading = undefined)));
  new Gauge({
    name: 'tschk_balance',
    help: 'Sum of the last balance read of each key not dead, by provider and currency (tokens: DeepSeek accounts).',
    labelNames: ['provider', 'currency'],
    registers,
    async collect() {
      const sums = new Map<string, { provider: string; currency: string; sum: number }>();
      for (const r of await balances()) {
        const currency = currencyKey(r.currency);
        const entry = sums.get(`${r.provider}\n${currency}`) ?? { provider: r.provider, currency, sum: 0 };
        entry.sum += Number(r.balance) || 0;
        sums.set(`${r.provider}\n${currency}`, entry);
      }
      this.reset();
      for (const e of sums.values()) this.set({ provider: e.provider, currency: e.currency }, e.sum);
    },
  });
  new Gauge({
    name: 'tschk_low_balance_keys',
    help: 'Keys whose last balance is below TSCHK_LOW_BALANCE, by provider.',
    labelNames: ['provider'],
    registers,
    async collect() {
      const counts = new Map<string, number>();
      for (const r of await balances()) {
        counts.set(r.provider, (counts.get(r.provider) ?? 0) + (isBelowThreshold(r.balance, r.currency, lowBalance) ? 1 : 0));
      }
      this.reset();
      for (const [provider, n] of counts) this.set({ provider }, n);
    },
  });
  new Gauge({
    name: 'tschk_database_writable',
    help: '0 while the last write to the database failed for a reason that lasts (disk full, read-only), 1 otherwise.',
    registers,
    collect() {
      this.set(db.writes.state.writable ? 1 : 0);
    },
  });
  collectDefaultMetrics({ register: registry });
  return { registry, checks, latency, runDuration, runs };
}

export const metricsRoutes: Route[] = [
  {
    method: 'GET',
    path: '/metrics',
    auth: 'metrics',
    handler: async (_req, app) => {
      const { contentType, text } = await app.metrics.render();
      return { status: 200, text, contentType };
    },
  },
];
