import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Db } from './db/connect.js';
import { num } from './db/dialect.js';
import type { Provider } from './db/providers.js';
import type { Verdict } from './db/schema.js';
import type { EngineEvents, RunSummary } from './engine/run.js';
import type { Route } from './http/router.js';

const VERDICTS: readonly Verdict[] = ['live', 'dead', 'exhausted', 'unknown'];

/**
 * Prometheus series of one daemon, in its own Registry (tests run several daemons in a process).
 * Labels are providers, pools, states and verdicts only: never one series per token.
 */
export class Metrics implements EngineEvents {
  readonly registry = new Registry();
  private readonly checks: Counter<'provider' | 'verdict'>;
  private readonly latency: Histogram<'provider'>;
  private readonly lastRunChecks: Gauge<'provider' | 'verdict'>;
  private readonly lastRunPruned: Gauge<'provider'>;
  private readonly lastRunHeld: Gauge<'provider'>;
  private readonly lastRunDuration: Gauge;
  private readonly runDuration: Histogram;
  private readonly runs: Counter<'trigger' | 'status'>;

  constructor(db: Db) {
    const registers = [this.registry];
    this.checks = new Counter({
      name: 'tschk_checks_total',
      help: 'Checks made, by provider and verdict.',
      labelNames: ['provider', 'verdict'],
      registers,
    });
    this.latency = new Histogram({
      name: 'tschk_check_duration_seconds',
      help: 'Time one check took, by provider.',
      labelNames: ['provider'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40],
      registers,
    });
    this.lastRunChecks = new Gauge({
      name: 'tschk_last_run_checks',
      help: "Verdicts of the provider's last run.",
      labelNames: ['provider', 'verdict'],
      registers,
    });
    this.lastRunPruned = new Gauge({
      name: 'tschk_last_run_pruned',
      help: "Tokens pruned (flagged or deleted) by the provider's last run.",
      labelNames: ['provider'],
      registers,
    });
    this.lastRunHeld = new Gauge({
      name: 'tschk_last_run_held',
      help: "Tokens whose pruning a safety rule held in the provider's last run.",
      labelNames: ['provider'],
      registers,
    });
    this.lastRunDuration = new Gauge({ name: 'tschk_last_run_duration_seconds', help: 'Duration of the last run.', registers });
    this.runDuration = new Histogram({
      name: 'tschk_run_duration_seconds',
      help: 'Duration of runs.',
      buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600],
      registers,
    });
    this.runs = new Counter({
      name: 'tschk_runs_total',
      help: 'Runs finished, by trigger and status.',
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
        const rows = await db.kysely
          .selectFrom('tokens')
          .innerJoin('providers', 'providers.id', 'tokens.provider_id')
          .select((eb) => ['providers.name as provider', 'tokens.pool as pool', 'tokens.state as state', eb.fn.countAll().as('n')])
          .groupBy(['providers.name', 'tokens.pool', 'tokens.state'])
          .execute();
        this.reset();
        for (const r of rows) this.set({ provider: r.provider, pool: r.pool, state: r.state }, num(r.n));
      },
    });
    new Gauge({
      name: 'tschk_last_run_completed_timestamp_seconds',
      help: 'When the last run that completed (status done) finished, Unix seconds.',
      registers,
      async collect() {
        const r = await db.kysely
          .selectFrom('check_runs')
          .select((eb) => eb.fn.max('finished_at').as('at'))
          .where('status', '=', 'done')
          .executeTakeFirst();
        const at = db.dialect.readTime(r?.at);
        this.reset();
        if (at) this.set(at.getTime() / 1000);
      },
    });
    collectDefaultMetrics({ register: this.registry });
  }

  checked(provider: Provider, verdict: Verdict, latencyMs: number): void {
    this.checks.inc({ provider: provider.name, verdict });
    this.latency.observe({ provider: provider.name }, latencyMs / 1000);
  }

  runFinished(summary: RunSummary): void {
    for (const p of summary.providers) {
      for (const verdict of VERDICTS) this.lastRunChecks.set({ provider: p.provider, verdict }, p[verdict]);
      this.lastRunPruned.set({ provider: p.provider }, p.pruned);
      this.lastRunHeld.set({ provider: p.provider }, p.held);
    }
    this.lastRunDuration.set(summary.durationMs / 1000);
    this.runDuration.observe(summary.durationMs / 1000);
    this.runs.inc({ trigger: summary.trigger, status: summary.status });
  }

  /** The exposition text and its content type. */
  async render(): Promise<{ contentType: string; text: string }> {
    return { contentType: this.registry.contentType, text: await this.registry.metrics() };
  }
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
