import { readLease } from '../db/lease.js';
import { lastFinishedRun, runningRuns } from '../db/runs.js';
import { tokenCountsByPool } from '../db/tokens.js';
import { runView } from '../views.js';
import { args, print, type Command } from './common.js';
import { withDb } from './db.js';
import { table } from './table.js';

export const statusCommand: Command = async (config, rest, io) => {
  const { values } = args(rest, { json: { type: 'boolean' } });
  return withDb(config, async (db) => {
    const pools = new Map<string, { provider: string; pool: string; active: number; suspect: number; invalid: number; disabled: number }>();
    for (const c of await tokenCountsByPool(db)) {
      const key = `${c.provider}/${c.pool}`;
      const row = pools.get(key) ?? { provider: c.provider, pool: c.pool, active: 0, suspect: 0, invalid: 0, disabled: 0 };
      row[c.state] += c.n;
      pools.set(key, row);
    }
    const last = await lastFinishedRun(db);
    const lastRun = last && runView(last, db.dialect);
    const lease = await readLease(db, 'run');
    const running = (await runningRuns(db)).map((r) => {
      const held = lease?.holder && lease.runId === Number(r.id) ? lease : undefined;
      return { ...runView(r, db.dialect), host: held?.host ?? null, pid: held?.pid ?? null, holder_gone: !held || held.expired };
    });
    if (values.json) return print(io, JSON.stringify({ pools: [...pools.values()], running, last_run: lastRun ?? null }, null, 2));
    const lines = [pools.size ? table([...pools.values()]) : 'no tokens'];
    for (const r of running) {
      const where = r.host ? ` on ${r.host} (pid ${r.pid})` : '';
      const gone = r.holder_gone ? '; its process stopped, it will be closed as aborted' : '';
      lines.push(`run ${r.id} running (${r.scope}) since ${r.started_at}${where}: ${r.checked} checked so far${gone}`);
    }
    lines.push(
      lastRun
        ? `last run ${lastRun.id}: ${lastRun.status} at ${lastRun.finished_at} (${lastRun.checked} checked: ${lastRun.live} live, ${lastRun.dead} dead, ${lastRun.exhausted} exhausted, ${lastRun.unknown} unknown)`
        : running.length
          ? 'no run finished yet'
          : 'no run yet',
    );
    return print(io, lines.join('\n'));
  });
};
