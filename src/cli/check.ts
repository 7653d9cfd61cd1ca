import { Daemon } from '../daemon.js';
import { RunBusyError, type HeldRun } from '../engine/coordinator.js';
import { RunScopeError, runScope, type RunSummary } from '../engine/run.js';
import { args, EXIT, print, UsageError, type Command } from './common.js';
import { logger } from './log.js';
import { formatSummary } from './summary.js';

export const checkCommand: Command = async (config, rest, io) => {
  const { values } = args(rest, {
    provider: { type: 'string' },
    pool: { type: 'string' },
    force: { type: 'boolean' },
    'force-prune': { type: 'boolean' },
    'no-wait': { type: 'boolean' },
    json: { type: 'boolean' },
  });
  const daemon = await Daemon.create(config, { logger: logger(config, io, 'check') });
  let summary: RunSummary;
  try {
    const run = daemon.runNow(
      { trigger: 'cli', provider: values.provider, pool: values.pool, force: values.force, forcePrune: values['force-prune'] },
      { whenBusy: values['no-wait'] ? 'refuse' : 'wait', onWait: (held) => io.stderr.write(`tschk: waiting for ${describeHeld(held)}\n`) },
    );
    summary = await Promise.race([run, io.shutdownRequested.then(() => daemon.stop().then(() => run))]);
  } catch (err) {
    if (err instanceof RunScopeError) throw new UsageError(err.message);
    if (err instanceof RunBusyError) {
      io.stderr.write(`tschk: ${describeHeld(err.held)} is in flight and does not cover this check (--no-wait)\n`);
      return EXIT.busy;
    }
    throw err;
  } finally {
    await daemon.stop();
  }
  if (values.json) print(io, JSON.stringify(summary, null, 2));
  else print(io, formatSummary(summary));
  return summary.status === 'done' ? EXIT.ok : EXIT.failed;
};

function describeHeld(held: HeldRun): string {
  const run = held.runId === null ? 'the run being opened' : `run ${held.runId}`;
  const where = held.host ? ` on ${held.host} (pid ${held.pid})` : '';
  const since = held.since ? ` since ${held.since.toISOString()}` : '';
  return `${run} (${runScope(held.scope)})${where}${since}`;
}
