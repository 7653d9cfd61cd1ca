import type { PruneMode } from '../config.js';
import { countsOf, type RunCounts } from '../db/runs.js';
import type { RunTrigger } from '../db/schema.js';
import type { ProviderRunSummary, RunSummary, TokenRef } from '../engine/types.js';

export type LowBalanceRef = TokenRef & { balance: string; currency: string };

/** What one provider has to report after a run: only the changes a human should hear about. */
export interface ProviderNews {
  provider: string;
  counts: RunCounts;
  unreachable: boolean;
  unreliable: boolean;
  error?: string;
  becameSuspect: TokenRef[];
  confirmedDead: TokenRef[];
  recovered: TokenRef[];
  prunedTokens: TokenRef[];
  heldReason?: string;
  lowBalance: LowBalanceRef[];
}

/** One message per run; `buildDigest` returns null when nothing is worth a message. */
export interface Digest {
  runId: number;
  scope: string;
  trigger: RunTrigger;
  status: RunSummary['status'];
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  counts: RunCounts;
  error?: string;
  providers: ProviderNews[];
  /** Sent by `tschk notify test`. */
  test?: boolean;
}

function news(p: ProviderRunSummary): ProviderNews {
  return {
    provider: p.provider,
    counts: countsOf(p),
    unreachable: p.unreachable,
    unreliable: p.unreliable,
    ...(p.error ? { error: p.error } : {}),
    becameSuspect: p.becameSuspect,
    confirmedDead: p.confirmedDead,
    recovered: p.recovered,
    prunedTokens: p.prunedTokens,
    ...(p.heldReason ? { heldReason: p.heldReason } : {}),
    lowBalance: p.lowBalance,
  };
}

function hasNews(p: ProviderNews): boolean {
  return (
    p.unreachable ||
    p.unreliable ||
    p.error !== undefined ||
    p.becameSuspect.length > 0 ||
    p.confirmedDead.length > 0 ||
    p.recovered.length > 0 ||
    p.prunedTokens.length > 0 ||
    p.counts.pruned > 0 ||
    p.counts.held > 0 ||
    p.heldReason !== undefined ||
    p.lowBalance.length > 0
  );
}

/** Pure: the digest of a run, or null when no token changed and nothing needs a human. */
export function buildDigest(summary: RunSummary): Digest | null {
  const providers = summary.providers.map(news).filter(hasNews);
  if (providers.length === 0 && summary.status !== 'failed') return null;
  return {
    runId: summary.runId,
    scope: summary.scope,
    trigger: summary.trigger,
    status: summary.status,
    startedAt: summary.startedAt,
    finishedAt: summary.finishedAt,
    durationMs: summary.durationMs,
    counts: countsOf(summary),
    ...(summary.error ? { error: summary.error } : {}),
    providers,
  };
}

/** Tokens named per line of a chat message; the count stays exact. */
const LISTED_PER_LINE = 10;

const PRUNED_LABEL: Record<PruneMode, string> = {
  off: 'pruned',
  flag: 'flagged invalid',
  delete: 'deleted (kept in token_archive)',
};

function tokenText(t: TokenRef): string {
  return `${t.mask} ${t.fingerprint}${t.pool === 'default' ? '' : ` (${t.pool})`}`;
}

function listLine(label: string, items: string[], total = items.length): string | undefined {
  if (total === 0) return undefined;
  const shown = items.slice(0, LISTED_PER_LINE);
  const more = total - shown.length;
  return `- ${label} (${total}): ${shown.join(', ')}${more > 0 ? `, … +${more} more` : ''}`;
}

export type TextStyle = 'markdown' | 'plain';

/**
 * Pure: the digest as a chat message, one block per provider. `maxBytes` keeps it within the
 * chat's limit (WeCom markdown and Telegram text stop at 4096); lines past it are dropped.
 */
export function renderDigest(
  d: Digest,
  opts: { style: TextStyle; pruneMode: PruneMode; maxBytes?: number },
): { title: string; text: string } {
  const bold = (s: string) => (opts.style === 'markdown' ? `**${s}**` : s);
  const c = d.counts;
  const title = `tschk${d.test ? ' test message' : ''}: run ${d.runId} (${d.scope})`;
  const head =
    `${bold(title)} ${d.status}, ${d.trigger}: ${c.checked} checked — ${c.live} live, ${c.dead} dead, ` +
    `${c.exhausted} exhausted, ${c.unknown} unknown` +
    (c.pruned > 0 ? `, ${c.pruned} pruned` : '');
  const lines = [head];
  if (d.error) lines.push(`run failed: ${d.error}`);
  for (const p of d.providers) {
    const prunedIds = new Set(p.prunedTokens.map((t) => t.id));
    const kept = p.confirmedDead.filter((t) => !prunedIds.has(t.id));
    const held = p.counts.held > 0 || p.heldReason !== undefined;
    const items = [
      p.unreachable && '- unreachable: every check was unknown, no token judged',
      p.unreliable && '- canary disagreed: dead verdicts not trusted this run',
      p.error && `- error: ${p.error}`,
      listLine('newly suspect', p.becameSuspect.map(tokenText)),
      listLine('confirmed dead', kept.map(tokenText)),
      listLine(PRUNED_LABEL[opts.pruneMode], p.prunedTokens.map(tokenText), Math.max(p.counts.pruned, p.prunedTokens.length)),
      listLine('recovered', p.recovered.map(tokenText)),
      held && `- pruning held${p.counts.held > 0 ? ` for ${p.counts.held} token(s)` : ''}${p.heldReason ? `: ${p.heldReason}` : ''}`,
      listLine(
        'low balance',
        p.lowBalance.map((t) => `${tokenText(t)} ${t.balance} ${t.currency}`),
      ),
    ].filter((x): x is string => typeof x === 'string');
    lines.push('', opts.style === 'markdown' ? bold(p.provider) : `${p.provider}:`, ...items);
  }
  return { title, text: fitBytes(lines, opts.maxBytes ?? Infinity) };
}

const SHORTENED = '… (shortened; tschk status shows the rest)';

function fitBytes(lines: string[], maxBytes: number): string {
  const text = lines.join('\n');
  if (Buffer.byteLength(text, 'utf8') <= maxBytes) return text;
  const budget = maxBytes - Buffer.byteLength('\n' + SHORTENED, 'utf8');
  const kept: string[] = [];
  let used = 0;
  for (const line of lines) {
    const size = Buffer.byteLength(line, 'utf8') + (kept.length > 0 ? 1 : 0);
    if (used + size > budget) break;
    kept.push(line);
    used += size;
  }
  return [...kept, SHORTENED].join('\n');
}
