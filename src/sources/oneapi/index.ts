import { disabledChannels, forgetDisabledChannel, rememberDisabledChannel } from '../../db/disabled-channels.js';
import { runLatencies } from '../../db/history.js';
import { eventsFor, recordTokenEvents } from '../../db/events.js';
import { listProviders, type Provider } from '../../db/providers.js';
import type { TokenRow } from '../../db/schema.js';
import { poolTokenStates } from '../../db/tokens.js';
import type { Logger } from '../../logger.js';
import { fingerprint } from '../../secret.js';
import type { SourceContext } from '../../context.js';
import { reconcilePool, type SourceEntry } from '../reconcile.js';
import { SourceNotEdited, type Source, type SourceEdit, type SyncScope } from '../types.js';
import {
  CHANNEL_AUTO_DISABLED,
  CHANNEL_ENABLED,
  CHANNEL_MANUALLY_DISABLED,
  channelAction,
  channelTokens,
  isMultiKey,
  keyWithout,
  matchChannels,
  ONEAPI_POOL,
  type Channel,
} from './channels.js';
import { findChannel, listChannels, openOneApi, recordChannelTest, replaceKey, setChannelStatus, type OneApiDb } from './database.js';

const DISABLED_ALL_DEAD = 'tschk: all tokens dead';
const DISABLED_MULTI_KEY = 'tschk: a key of this multi-key channel is dead';
const ENABLED_AGAIN = 'tschk: tokens live again';

/** The daemon's connection; a one-shot process (the CLI) that has none opens one for the call. */
async function withOneApi<T>(ctx: SourceContext, fn: (db: OneApiDb) => Promise<T>): Promise<T | undefined> {
  if (!ctx.config.oneApi) return undefined;
  if (ctx.oneApi) return fn(ctx.oneApi.get());
  const db = openOneApi(ctx.config.oneApi);
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

async function channelsByProvider(ctx: SourceContext, db: OneApiDb, all?: readonly Channel[]): Promise<Map<string, Channel[]>> {
  const providers = (await listProviders(ctx.db)).filter((p) => p.enabled);
  return matchChannels(all ?? (await listChannels(db)), providers, ctx.config.oneApi?.channels ?? new Map());
}

/**
 * Brings the tokens of every provider's channels into its `oneapi` pool (step 1 of a run). A token
 * in several channels is one row whose `source_ref` lists them all (`12,15`).
 */
async function syncOneApi(ctx: SourceContext, scope: SyncScope): Promise<void> {
  if (scope.pool !== undefined && scope.pool !== ONEAPI_POOL) return;
  await withOneApi(ctx, async (oneapi) => {
    const matched = await channelsByProvider(ctx, oneapi);
    for (const provider of await listProviders(ctx.db)) {
      if (!provider.enabled || (scope.provider !== undefined && scope.provider !== provider.name)) continue;
      const entries = new Map<string, SourceEntry>();
      for (const channel of matched.get(provider.name) ?? []) {
        for (const secret of channelTokens(channel.key)) {
          const e = entries.get(secret);
          if (!e) entries.set(secret, { secret, sourceRef: String(channel.id) });
          else if (!e.sourceRef.split(',').includes(String(channel.id))) e.sourceRef += `,${channel.id}`;
        }
      }
      const r = await reconcilePool(ctx.db, { providerId: provider.id, providerName: provider.name, pool: ONEAPI_POOL, source: 'oneapi' }, [
        ...entries.values(),
      ]);
      if (r.added > 0 || r.removed > 0) {
        ctx.logger.info({ provider: provider.name, pool: ONEAPI_POOL, added: r.added, removed: r.removed }, 'One-API channels synced');
      }
    }
  });
}

/**
 * How One-API tokens leave their channels (delete mode, or a user's removal). A token leaves
 * every single-line key it is in (the key keeps its other tokens, in order); its row is archived
 * and deleted when no key holds it any more, else flagged — a multi-key channel or one with
 * nothing left is disabled by `settleChannels`. The keys are rewritten, compare-and-set, in One-API's
 * own transaction inside tschk's: a key edited meanwhile rolls back both, and the tokens are
 * flagged now and removed on a later run.
 *
 * The two are separate databases and do not commit together: One-API's commits first, then
 * tschk's. Should tschk's commit fail after it (its database goes away at that moment), the keys
 * no longer hold the tokens while tschk still has their rows, neither archived nor flagged; the
 * prune reports the error. The next sync finds the tokens in no key and archives them with reason
 * `source_removed` instead of `pruned`: none goes back into rotation, none is lost. The other
 * order would be worse: a key still holding a token tschk archived brings it back as new.
 */
async function planOneApiRemoval(ctx: SourceContext, provider: Provider, tokens: readonly TokenRow[]): Promise<SourceEdit[]> {
  const channels = (await withOneApi(ctx, async (oneapi) => (await channelsByProvider(ctx, oneapi)).get(provider.name))) ?? [];
  const dead = new Set(tokens.map((t) => t.secret));
  const rewrites: Array<{ channel: Channel; key: string }> = [];
  const after = channels.map((channel) => {
    const key = keyWithout(channel.key, dead) ?? channel.key;
    if (key !== channel.key) rewrites.push({ channel, key });
    return key;
  });
  const stillUsed = new Set(after.flatMap(channelTokens));
  return [
    {
      tokens,
      staying: tokens.filter((t) => stillUsed.has(t.secret)),
      flagStaying: true,
      async apply() {
        await withOneApi(ctx, (oneapi) =>
          oneapi.kysely.transaction().execute(async (otrx) => {
            for (const r of rewrites) {
              if (!(await replaceKey(otrx, r.channel.id, r.channel.key, r.key))) {
                throw new SourceNotEdited(
                  'One-API channel key changed while tschk edited it: its dead tokens are flagged now and removed on a later run',
                  'warn',
                  { channel: r.channel.id },
                );
              }
            }
          }),
        );
      },
      async after() {
        for (const r of rewrites) {
          const removed = channelTokens(r.channel.key).length - channelTokens(r.key).length;
          ctx.logger.info({ channel: r.channel.id, name: r.channel.name, removed }, 'dead tokens removed from a One-API channel key');
        }
      },
    },
  ];
}

/**
 * After a provider's run: disable channels whose tokens are all confirmed dead, enable again the
 * ones tschk disabled whose tokens came back, and write `test_time`/`response_time` of every
 * channel checked in this run. Channels with status 2 are not even looked at.
 */
async function settleChannels(ctx: SourceContext, provider: Provider, runId: number, log: Logger, now = new Date()): Promise<void> {
  await withOneApi(ctx, async (oneapi) => {
    const all = await listChannels(oneapi);
    const ours = await disabledChannels(ctx.db, oneapi.name);
    for (const id of ours) {
      if (all.find((c) => c.id === id)?.status === CHANNEL_AUTO_DISABLED) continue;
      // A human (or One-API) changed it since, or deleted it: it is theirs now.
      await forgetDisabledChannel(ctx.db, oneapi.name, id);
      ours.delete(id);
    }
    const channels = (await channelsByProvider(ctx, oneapi, all)).get(provider.name) ?? [];
    if (channels.length === 0) return;
    const rows = await poolTokenStates(ctx.db, provider.id, ONEAPI_POOL);
    const byFingerprint = new Map(rows.map((r) => [r.fingerprint, r]));
    const latency = await runLatencies(ctx.db, runId);
    const mode = ctx.config.prune.mode;

    for (const channel of channels) {
      const tokens = channelTokens(channel.key).map((t) => byFingerprint.get(fingerprint(t)));
      const multiKey = isMultiKey(channel.key);
      const action = channelAction({
        status: channel.status,
        multiKey,
        states: tokens.map((t) => t?.state ?? 'active'),
        mode,
        disabledByTschk: ours.has(channel.id),
      });
      const where = { channel: channel.id, name: channel.name };
      if (action === 'disable') {
        const reason = tokens.every((t) => t?.state === 'invalid') ? DISABLED_ALL_DEAD : DISABLED_MULTI_KEY;
        if (await setChannelStatus(oneapi, channel.id, CHANNEL_ENABLED, CHANNEL_AUTO_DISABLED, reason, now)) {
          await rememberDisabledChannel(
            ctx.db,
            { oneApiDatabase: oneapi.name, channelId: channel.id, providerName: provider.name, reason },
            now,
          );
          log.warn({ ...where, reason }, 'One-API channel disabled');
          await recordTokenEvents(
            ctx.db,
            eventsFor(
              tokens.filter((t) => t !== undefined),
              { event: 'channel_disabled', reason: `channel ${channel.id}: ${reason}`, runId, at: now },
            ),
          );
        }
      } else if (action === 'enable') {
        if (await setChannelStatus(oneapi, channel.id, CHANNEL_AUTO_DISABLED, CHANNEL_ENABLED, ENABLED_AGAIN, now)) {
          await forgetDisabledChannel(ctx.db, oneapi.name, channel.id);
          log.info(where, 'One-API channel enabled again: its tokens are live');
          await recordTokenEvents(
            ctx.db,
            eventsFor(
              tokens.filter((t) => t !== undefined),
              { event: 'channel_enabled', reason: `channel ${channel.id}: ${ENABLED_AGAIN}`, runId, at: now },
            ),
          );
        }
      }
      const checked = tokens.flatMap((t) => (t && latency.has(t.id) ? [latency.get(t.id)!] : []));
      if (checked.length > 0) {
        await recordChannelTest(oneapi, channel.id, now, checked.reduce((a, b) => a + b, 0) / checked.length);
      }
    }
  });
}

/** Restores an archived One-API token into the first of its channels whose key can take it. */
async function appendToChannel(
  ctx: SourceContext,
  provider: Provider,
  sourceRef: string | null,
  secret: string,
): Promise<number | undefined> {
  const ids = (sourceRef ?? '')
    .split(',')
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 0);
  const id = await withOneApi(ctx, async (oneapi) => {
    for (const id of ids) {
      const channel = await findChannel(oneapi, id);
      if (!channel || channel.status === CHANNEL_MANUALLY_DISABLED || isMultiKey(channel.key)) continue;
      const key = channel.key.trim() === '' ? secret : `${channel.key.trim()},${secret}`;
      if (await replaceKey(oneapi.kysely, id, channel.key, key)) return id;
    }
    return undefined;
  });
  if (id !== undefined) await syncOneApi(ctx, { provider: provider.name, pool: ONEAPI_POOL });
  return id;
}

/** One-API's channels (`TSCHK_ONEAPI_DATABASE_URL`) as a source. */
export const oneApiChannels: Source = {
  name: 'oneapi',
  configured: (config) => config.oneApi !== undefined,
  sync: (ctx, scope) =>
    syncOneApi(ctx, scope).catch((err: unknown) => {
      const message = err instanceof Error ? err.message : String(err);
      ctx.logger.error({ err: message }, 'One-API channels could not be synced; their tokens keep their last known list');
    }),
  planRemoval: (ctx, provider, tokens) => planOneApiRemoval(ctx, provider, tokens),
  async settle(ctx, provider, run, log) {
    if (run.pool === undefined || run.pool === ONEAPI_POOL) await settleChannels(ctx, provider, run.runId, log);
  },
  async restore(ctx, provider, archived) {
    const channel = await appendToChannel(ctx, provider, archived.sourceRef, archived.secret);
    return channel === undefined ? undefined : `One-API channel ${channel}`;
  },
};
