import type { PruneMode } from '../../config.js';
import type { TokenState } from '../../db/schema.js';
import type { Provider } from '../../db/providers.js';
import { splitTokens } from '../../secret.js';

/** `channels.status`: 1 enabled, 2 disabled by a human, 3 disabled automatically. */
export const CHANNEL_ENABLED = 1;
export const CHANNEL_MANUALLY_DISABLED = 2;
export const CHANNEL_AUTO_DISABLED = 3;

/** The pool that holds a provider's One-API tokens. */
export const ONEAPI_POOL = 'oneapi';

export interface Channel {
  id: number;
  key: string;
  status: number;
  name: string | null;
  baseUrl: string | null;
  /** new-api only. */
  otherInfo?: string | null;
}

/** `http://Host:8000/v1/` → `http://host:8000`: trailing `/` and `/v1` removed, as docs/one-api.md says. */
export function normalizeBaseUrl(raw: string | null | undefined): string | undefined {
  let s = raw?.trim();
  if (!s) return undefined;
  try {
    const u = new URL(s);
    s = u.origin + u.pathname;
  } catch {
    // not a URL: compare the text as it is
  }
  s = s.replace(/\/+$/, '');
  if (s.toLowerCase().endsWith('/v1')) s = s.slice(0, -3).replace(/\/+$/, '');
  return s;
}

/** A free-api provider's base: its check URL minus `/token/check`. */
export function freeApiBase(checkUrl: string | null): string | undefined {
  const n = normalizeBaseUrl(checkUrl);
  return n?.toLowerCase().endsWith('/token/check') ? n.slice(0, -'/token/check'.length).replace(/\/+$/, '') : undefined;
}

/**
 * Pure: the channels of each provider. `TSCHK_ONEAPI_CHANNELS` names them for a provider it lists;
 * otherwise a free-api provider gets the channels whose base URL is its own (channels named in the
 * map for another provider excepted). Human-disabled channels (status 2) belong to nobody.
 */
export function matchChannels(
  channels: readonly Channel[],
  providers: readonly Provider[],
  explicit: ReadonlyMap<string, readonly number[]>,
): Map<string, Channel[]> {
  const mapped = new Set([...explicit.values()].flat());
  const out = new Map<string, Channel[]>();
  for (const p of providers) {
    const ids = explicit.get(p.name);
    const base = p.kind === 'free-api' ? freeApiBase(p.checkUrl) : undefined;
    const mine = channels.filter((c) => {
      if (c.status === CHANNEL_MANUALLY_DISABLED) return false;
      if (ids) return ids.includes(c.id);
      return base !== undefined && !mapped.has(c.id) && normalizeBaseUrl(c.baseUrl) === base;
    });
    out.set(p.name, mine);
  }
  return out;
}

/** The tokens of a channel key: split on newlines, then commas; trimmed; empties dropped. */
export function channelTokens(key: string): string[] {
  return splitTokens(key);
}

/** A new-api multi-key channel: one key per line, with per-line status in `channel_info`. */
export function isMultiKey(key: string): boolean {
  return key.trim().includes('\n');
}

/**
 * Pure: the key without the dead tokens (order kept, joined with `,`), or undefined when it must
 * not be rewritten: a multi-key channel (rewriting it would shift new-api's per-line status), or
 * nothing would be left (that channel is disabled instead, so its key stays for a recovery).
 */
export function keyWithout(key: string, dead: ReadonlySet<string>): string | undefined {
  if (isMultiKey(key)) return undefined;
  const tokens = channelTokens(key);
  const kept = tokens.filter((t) => !dead.has(t));
  if (kept.length === 0) return undefined;
  return kept.length === tokens.length ? key : kept.join(',');
}

export type ChannelAction = 'disable' | 'enable' | 'none';

/**
 * Pure: what a channel needs after a run, from the states of its tokens in tschk.
 * Off when every token is flagged — or, under delete, when a multi-key channel has a flagged
 * token (its key cannot be edited, so the whole channel leaves rotation). tschk enables only a
 * channel it disabled itself, and never touches a human's status 2.
 */
export function channelAction(c: {
  status: number;
  multiKey: boolean;
  states: readonly TokenState[];
  mode: PruneMode;
  disabledByTschk: boolean;
}): ChannelAction {
  if (c.mode === 'off' || c.status === CHANNEL_MANUALLY_DISABLED) return 'none';
  const invalid = c.states.filter((s) => s === 'invalid').length;
  const off = invalid > 0 && (invalid === c.states.length || (c.mode === 'delete' && c.multiKey));
  if (off && c.status === CHANNEL_ENABLED) return 'disable';
  if (!off && c.status === CHANNEL_AUTO_DISABLED && c.disabledByTschk) return 'enable';
  return 'none';
}
