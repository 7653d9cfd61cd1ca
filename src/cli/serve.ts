import { Daemon } from '../daemon.js';
import { listProviders } from '../db/providers.js';
import { args, EXIT, type Command } from './common.js';
import { logger } from './log.js';

export const serveCommand: Command = async (config, rest, io) => {
  args(rest, {});
  const log = logger(config, io, 'serve');
  const daemon = await Daemon.create(config, { logger: log });
  await daemon.start();
  const providers = await listProviders(daemon.context.db);
  log.info({ cron: config.cron, providers: providers.map((p) => p.name) }, 'tschk serving');
  if (providers.length === 0) {
    log.warn('no providers yet: set TokenStatuCheckUrls__DeepTokenCheckUrl (or another) or run tschk providers add');
  }
  await io.shutdownRequested;
  log.info('shutdown requested');
  await daemon.stop();
  return EXIT.ok;
};
