import { ConfigError } from './config-error.js';
import { EXIT, isParseArgsError, print, UsageError, type CliIo, type Command } from './cli/common.js';
import { HELP } from './cli/help.js';

export { EXIT, type CliIo } from './cli/common.js';
export { formatSummary } from './cli/summary.js';
export { table } from './cli/table.js';

// Each command is loaded only when it runs: `--help` loads no driver, HTTP client or logger, and
// `status` not the engine.
const COMMANDS: Record<string, () => Promise<Command>> = {
  serve: async () => (await import('./cli/serve.js')).serveCommand,
  check: async () => (await import('./cli/check.js')).checkCommand,
  migrate: async () => (await import('./cli/migrate.js')).migrateCommand,
  providers: async () => (await import('./cli/providers.js')).providersCommand,
  tokens: async () => (await import('./cli/tokens.js')).tokensCommand,
  history: async () => (await import('./cli/history.js')).historyCommand,
  status: async () => (await import('./cli/status.js')).statusCommand,
  notify: async () => (await import('./cli/notify.js')).notifyCommand,
};

export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const [command = 'serve', ...rest] = argv;
  if (command === '--help' || command === '-h' || command === 'help') return print(io, HELP.main!);
  try {
    if (rest.includes('--help') || rest.includes('-h')) {
      const help = HELP[command];
      if (!help) throw new UsageError(`unknown command '${command}'; run tschk --help`);
      const kinds = help.includes('KINDS') ? (await import('./checkers/index.js')).providerKinds().join(', ') : '';
      return print(io, help.replace('KINDS', kinds));
    }
    const { loadConfig } = await import('./config.js');
    const config = loadConfig(io.env);
    const load = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
    if (!load) throw new UsageError(`unknown command '${command}'; run tschk --help`);
    return await (
      await load()
    )(config, rest, io);
  } catch (err) {
    const usage = err instanceof UsageError || err instanceof ConfigError || isParseArgsError(err);
    const message = (err instanceof Error ? err.message : String(err)).split('\n')[0];
    const prefix = usage && Object.hasOwn(HELP, command) && !(err instanceof ConfigError) ? `${command}: ` : '';
    io.stderr.write(`tschk: ${prefix}${message}\n`);
    return usage ? EXIT.usage : EXIT.failed;
  }
}
