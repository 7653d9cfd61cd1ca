import type { RunSummary } from '../engine/run.js';
import { table } from './table.js';

export function formatSummary(s: RunSummary): string {
  const rows = s.providers.map((p) => ({
    provider: p.provider,
    checked: p.checked,
    live: p.live,
    dead: p.dead,
    exhausted: p.exhausted,
    unknown: p.unknown,
    pruned: p.pruned,
    held: p.held,
    seconds: (p.durationMs / 1000).toFixed(1),
    note: [p.error, p.unreachable && 'unreachable', p.unreliable && 'canary disagreed', p.heldReason && `pruning held: ${p.heldReason}`]
      .filter(Boolean)
      .join('; '),
  }));
  const head = `run ${s.runId} ${s.status} (${s.scope}): ${s.checked} checked — ${s.live} live, ${s.dead} dead, ${s.exhausted} exhausted, ${s.unknown} unknown in ${(s.durationMs / 1000).toFixed(1)} s`;
  return [head, ...(rows.length ? [table(rows)] : ['no provider in scope']), ...(s.error ? [`error: ${s.error}`] : [])].join('\n');
}
