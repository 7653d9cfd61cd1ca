import { Agent } from 'undici';
import { hasNotifyTargets, sendTestNotifications } from '../notify/index.js';
import { args, EXIT, print, UsageError, type Command } from './common.js';
import { logger } from './log.js';

export const notifyCommand: Command = async (config, rest, io) => {
  const [verb, ...more] = rest;
  if (verb !== 'test') throw new UsageError('expected test; see tschk notify --help');
  args(more, {});
  if (!hasNotifyTargets(config)) throw new UsageError('nothing to test: set TSCHK_WEBHOOK_URL or TSCHK_UPTIME_KUMA_PUSH');
  const dispatcher = new Agent({ connections: 4 });
  try {
    const results = await sendTestNotifications({ config, logger: logger(config, io, 'notify'), dispatcher });
    for (const r of results) print(io, `${r.ok ? 'ok    ' : 'failed'}  ${r.target}  ${r.host}${r.reason ? `  (${r.reason})` : ''}`);
    return results.every((r) => r.ok) ? EXIT.ok : EXIT.failed;
  } finally {
    await dispatcher.close();
  }
};
