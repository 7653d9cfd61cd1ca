import { kindRequirements, providerKinds } from '../checkers/index.js';
import type { Config } from '../config.js';
import { listProviders, upsertProvider } from '../db/providers.js';
import { removeProviderAndTokens } from '../db/tokens.js';
import { LIMITS, NAME_PATTERN, NAME_RULE, URL_PATTERN, URL_RULE } from '../validation.js';
import { providerView } from '../views.js';
import { args, maxLength, print, UsageError, type CliIo, type Command } from './common.js';
import { requireProvider, withDb } from './db.js';
import { table } from './table.js';

export const providersCommand: Command = async (config, rest, io) => {
  const [verb, ...more] = rest;
  switch (verb) {
    case 'list':
      return list(config, more, io);
    case 'add':
      return add(config, more, io);
    case 'remove':
      return remove(config, more, io);
    default:
      throw new UsageError(`expected list, add or remove; see tschk providers --help`);
  }
};

function list(config: Readonly<Config>, more: string[], io: CliIo): Promise<number> {
  const { values } = args(more, { json: { type: 'boolean' } });
  return withDb(config, async (db) => {
    const providers = (await listProviders(db)).map((p) => providerView(p, config));
    if (values.json) return print(io, JSON.stringify(providers, null, 2));
    if (providers.length === 0) return print(io, 'no providers; add one with tschk providers add NAME --kind free-api --url URL');
    return print(
      io,
      table(
        providers.map((p) => ({
          name: p.name,
          kind: p.kind,
          url: p.check_url ?? '(default)',
          enabled: p.enabled ? 'yes' : 'no',
          concurrency: p.concurrency ?? '',
        })),
      ),
    );
  });
}

function add(config: Readonly<Config>, more: string[], io: CliIo): Promise<number> {
  const { values, positionals } = args(more, { kind: { type: 'string' }, url: { type: 'string' }, concurrency: { type: 'string' } }, 1);
  const name = positionals[0];
  if (!name || !NAME_PATTERN.test(name)) throw new UsageError(`NAME is required: ${NAME_RULE}`);
  const kind = values.kind ?? '';
  const checker = kindRequirements(kind);
  if (!checker) throw new UsageError(`--kind must be one of ${providerKinds().join(', ')}; got '${kind}'`);
  if (checker.requiresUrl && !values.url) throw new UsageError(`--url is required for kind ${kind}`);
  if (values.url !== undefined && !URL_PATTERN.test(values.url)) throw new UsageError(`--url must be ${URL_RULE}; got '${values.url}'`);
  maxLength('--url', values.url, LIMITS.urlChars);
  const concurrency = values.concurrency === undefined ? null : Number(values.concurrency);
  if (concurrency !== null && (!Number.isInteger(concurrency) || concurrency < 1)) {
    throw new UsageError(`--concurrency must be a whole number ≥ 1; got '${values.concurrency}'`);
  }
  return withDb(config, async (db) => {
    const p = await upsertProvider(db, { name, kind, checkUrl: values.url ?? null, concurrency });
    return print(io, `provider ${p.name} (${p.kind}) saved`);
  });
}

function remove(config: Readonly<Config>, more: string[], io: CliIo): Promise<number> {
  const { positionals } = args(more, {}, 1);
  return withDb(config, async (db) => {
    const p = await requireProvider(db, positionals[0]);
    const declared = config.legacyProviders.find((d) => d.name === p.name);
    if (declared)
      throw new UsageError(`provider '${p.name}' is declared by ${declared.variable}; unset it first, or it comes back at the next start`);
    const archived = await removeProviderAndTokens(db, p, 'cli');
    return print(io, `provider ${p.name} removed; ${archived} token(s) archived`);
  });
}
