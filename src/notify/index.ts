import type { Config } from '../config.js';
import type { AppContext } from '../context.js';
import type { EngineEvents, RunSummary } from '../engine/types.js';
import type { Logger } from '../logger.js';
import { DEFAULT_TIMING, deliver, type Delivery, type DeliveryContext, type DeliveryTiming } from './deliver.js';
import { buildDigest, type Digest } from './digest.js';
import { judgeAnswer, webhookRequest, type WebhookSettings } from './formats.js';
import { currentPoolCounts, kumaLabel, kumaPush, kumaRequest, type KumaPush, type KumaTarget, type PoolCounts } from './uptime-kuma.js';

export type NotifyContext = Pick<AppContext, 'db' | 'config' | 'logger' | 'dispatcher' | 'abortSignal'> & {
  timing?: DeliveryTiming;
  now?: () => Date;
};

const settings = (config: Readonly<Config>): WebhookSettings => ({
  format: config.notify.webhookFormat,
  secret: config.notify.webhookSecret,
  telegramChatId: config.notify.telegramChatId,
  pruneMode: config.prune.mode,
});

const deliveryContext = (ctx: Omit<NotifyContext, 'db'>, logger: Logger): DeliveryContext => ({
  dispatcher: ctx.dispatcher,
  logger,
  timing: ctx.timing ?? DEFAULT_TIMING,
  abortSignal: ctx.abortSignal,
});

export function hasNotifyTargets(config: Readonly<Config>): boolean {
  return config.notify.webhookUrls.length > 0 || config.notify.uptimeKuma.length > 0;
}

const currentTime = (ctx: Omit<NotifyContext, 'db'>): Date => (ctx.now ? ctx.now() : new Date());

function sendDigest(ctx: Omit<NotifyContext, 'db'>, log: Logger, digest: Digest, now: Date): Array<Promise<Delivery>> {
  const s = settings(ctx.config);
  const deliveryCtx = deliveryContext(ctx, log);
  return ctx.config.notify.webhookUrls.map((url) =>
    deliver(webhookRequest(url, digest, s, now), `webhook ${s.format}`, (st, b) => judgeAnswer(s.format, st, b), deliveryCtx),
  );
}

const sendKuma = (t: KumaTarget, push: Pick<KumaPush, 'up' | 'msg' | 'pingMs'>, ctx: DeliveryContext): Promise<Delivery> =>
  deliver(kumaRequest(t.url, push), `uptime-kuma ${kumaLabel(t)}`, (st, b) => judgeAnswer('uptime-kuma', st, b), ctx);

async function pushKuma(ctx: NotifyContext, log: Logger, summary: RunSummary): Promise<Delivery[]> {
  const targets = ctx.config.notify.uptimeKuma;
  if (targets.length === 0) return [];
  let pools: PoolCounts[];
  try {
    pools = await currentPoolCounts(ctx.db);
  } catch (err) {
    log.error({ err: err instanceof Error ? err.message : String(err) }, 'uptime-kuma push skipped: pool counts unreadable');
    return [];
  }
  const deliveryCtx = deliveryContext(ctx, log);
  return Promise.all(targets.map((t) => sendKuma(t, kumaPush(t, summary, pools, ctx.config.notify.healthyRatio), deliveryCtx)));
}

/**
 * The notification observer: after every run (its row already closed), one digest per webhook
 * URL when something changed, and one Uptime-Kuma heartbeat per configured monitor. The engine
 * awaits it; every delivery ends by its deadline and none ever throws.
 */
export function notificationObserver(ctx: NotifyContext): EngineEvents {
  const log = ctx.logger.child({ area: 'notify' });
  return {
    async runFinished(summary) {
      if (!hasNotifyTargets(ctx.config)) return;
      const runLog = log.child({ runId: summary.runId });
      const digest = buildDigest(summary);
      const webhooks = digest ? sendDigest(ctx, runLog, digest, currentTime(ctx)) : [];
      if (!digest && ctx.config.notify.webhookUrls.length > 0) runLog.debug('nothing changed: no digest sent');
      await Promise.all([...webhooks, pushKuma(ctx, runLog, summary)]);
    },
  };
}

/** A made-up run (a suspect, a pruned and a recovered token) for `tschk notify test`; its masks belong to no token. */
function sampleDigest(now: Date): Digest {
  const at = now.toISOString();
  const token = (id: number, mask: string, fingerprint: string) => ({ id, pool: 'default', mask, fingerprint });
  const counts = { checked: 4, live: 2, dead: 2, exhausted: 0, unknown: 0, pruned: 1, held: 0 };
  return {
    runId: 0,
    scope: 'all',
    trigger: 'cli',
    status: 'done',
    startedAt: at,
    finishedAt: at,
    durationMs: 0,
    counts,
    providers: [
      {
        provider: 'example',
        counts,
        unreachable: false,
        unreliable: false,
        becameSuspect: [token(1, 'abcd…wxyz', '000000000001')],
        confirmedDead: [token(2, 'efgh…stuv', '000000000002')],
        recovered: [token(3, 'ijkl…opqr', '000000000003')],
        prunedTokens: [token(2, 'efgh…stuv', '000000000002')],
        lowBalance: [],
      },
    ],
    test: true,
  };
}

/** `tschk notify test`: a sample digest to every webhook and an `up` heartbeat to every Uptime-Kuma monitor. */
export async function sendTestNotifications(ctx: Omit<NotifyContext, 'db'>): Promise<Delivery[]> {
  const log = ctx.logger.child({ area: 'notify' });
  const now = currentTime(ctx);
  const deliveryCtx = deliveryContext(ctx, log);
  const kuma = ctx.config.notify.uptimeKuma.map((t) => sendKuma(t, { up: true, msg: 'tschk notify test', pingMs: null }, deliveryCtx));
  return Promise.all([...sendDigest(ctx, log, sampleDigest(now), now), ...kuma]);
}
