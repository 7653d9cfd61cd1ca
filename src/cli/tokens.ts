import { readFile } from 'node:fs/promises';
import { kindRequirements } from '../checkers/index.js';
import type { Config } from '../config.js';
import { listArchive } from '../db/archive.js';
import { findProviderById, listProviders } from '../db/providers.js';
import type { TokenRow, TokenState } from '../db/schema.js';
import { findToken, findTokensByFingerprint, importTokens, listTokens } from '../db/tokens.js';
import { describeLineProblem, parseTokenLines, unusableEntries } from '../secret.js';
import { removeFromSources } from '../sources/remove.js';
import { restoreArchived, RestoreError } from '../sources/restore.js';
import { EXPECT_RULE, isExpectation, isTokenState, LIMITS, NAME_PATTERN, NAME_RULE, TOKEN_STATES } from '../validation.js';
import { tokenView } from '../views.js';
import { args, EXIT, maxLength, print, UsageError, type CliIo, type Command } from './common.js';
import { requireProvider, withDb } from './db.js';
import { logger } from './log.js';
import { table } from './table.js';

type Verb = (config: Readonly<Config>, more: string[], io: CliIo) => Promise<number>;

export const tokensCommand: Command = async (config, rest, io) => {
  const [verb, ...more] = rest;
  const run = verb !== undefined && Object.hasOwn(VERBS, verb) ? VERBS[verb] : undefined;
  if (!run) throw new UsageError(`expected import, list, remove, export or restore; see tschk tokens --help`);
  return run(config, more, io);
};

function stateOption(raw: string | undefined): TokenState | undefined {
  if (raw === undefined) return undefined;
  if (!isTokenState(raw)) throw new UsageError(`--state must be one of ${TOKEN_STATES.join(', ')}; got '${raw}'`);
  return raw;
}

async function readInput(io: CliIo, file: string | undefined): Promise<string> {
  if (file === undefined || file === '-') {
    const chunks: Buffer[] = [];
    for await (const chunk of io.stdin) chunks.push(Buffer.from(chunk as Uint8Array | string));
    return Buffer.concat(chunks).toString('utf8');
  }
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

/** An import is refused whole, naming the first line (as an editor counts it) that cannot be a token. */
function refuseUnusableLines(text: string, from: string): void {
  const lines = text.replace(/^\uFEFF/, '').split(/\r\n|\n|\r/);
  const bad = unusableEntries(lines);
  if (bad.length === 0) return;
  const more = bad.length > 1 ? `; ${bad.length - 1} more line(s) cannot be tokens either` : '';
  throw new UsageError(`line ${bad[0]!.index + 1} of ${from} ${describeLineProblem(bad[0]!.problem)}${more}: nothing imported`);
}

const importVerb: Verb = async (config, more, io) => {
  const { values, positionals } = args(
    more,
    { provider: { type: 'string' }, pool: { type: 'string' }, expect: { type: 'string' }, label: { type: 'string' } },
    1,
  );
  if (values.expect !== undefined && !isExpectation(values.expect))
    throw new UsageError(`--expect must be ${EXPECT_RULE}; got '${values.expect}'`);
  if (values.pool !== undefined && !NAME_PATTERN.test(values.pool)) {
    throw new UsageError(`--pool must be ${NAME_RULE}; got '${values.pool.slice(0, 80)}'`);
  }
  maxLength('--label', values.label, LIMITS.labelChars);
  const text = await readInput(io, positionals[0]);
  refuseUnusableLines(text, positionals[0] === undefined || positionals[0] === '-' ? 'standard input' : positionals[0]);
  return withDb(config, async (db) => {
    const p = await requireProvider(db, values.provider);
    const r = await importTokens(db, {
      providerId: p.id,
      pool: values.pool ?? 'default',
      entries: parseTokenLines(text),
      source: 'cli',
      wholeEntries: kindRequirements(p.kind)?.wholeEntries,
      label: values.label,
      expect: (values.expect as 'live' | 'dead' | undefined) ?? null,
    });
    return print(io, `imported ${r.added} token(s) into ${p.name}/${values.pool ?? 'default'}; skipped ${r.duplicates} duplicate(s)`);
  });
};

const listVerb: Verb = async (config, more, io) => {
  const { values } = args(more, {
    provider: { type: 'string' },
    pool: { type: 'string' },
    state: { type: 'string' },
    json: { type: 'boolean' },
  });
  const state = stateOption(values.state);
  return withDb(config, async (db) => {
    const p = values.provider ? await requireProvider(db, values.provider) : undefined;
    const names = new Map((await listProviders(db)).map((x) => [x.id, x.name]));
    const rows = (await listTokens(db, { providerId: p?.id, pool: values.pool, state })).map((t) =>
      tokenView(t, db.dialect, names.get(t.provider_id)),
    );
    if (values.json) return print(io, JSON.stringify(rows, null, 2));
    if (rows.length === 0) return print(io, 'no tokens');
    return print(
      io,
      table(
        rows.map((r) => ({
          id: r.id,
          provider: r.provider,
          pool: r.pool,
          pos: r.position,
          token: r.mask,
          fingerprint: r.fingerprint,
          state: r.state,
          last: r.last_verdict ?? '',
          reason: r.last_reason ?? '',
          checked: r.last_checked_at ?? 'never',
        })),
      ),
    );
  });
};

const removeVerb: Verb = async (config, more, io) => {
  const { values } = args(more, { id: { type: 'string' }, fingerprint: { type: 'string' } });
  if ((values.id === undefined) === (values.fingerprint === undefined)) throw new UsageError('give --id N or --fingerprint FP');
  if (values.id !== undefined && !/^\d{1,15}$/.test(values.id)) throw new UsageError(`--id must be a whole number; got '${values.id}'`);
  return withDb(config, async (db) => {
    const tokens: TokenRow[] =
      values.id !== undefined
        ? [await findToken(db, Number(values.id))].filter((t): t is TokenRow => t !== undefined)
        : await findTokensByFingerprint(db, values.fingerprint!);
    if (tokens.length === 0) throw new UsageError('no such token');
    const log = logger(config, io, 'tokens');
    for (const t of tokens) {
      const p = (await findProviderById(db, t.provider_id))!;
      const kept = await removeFromSources({ db, config, logger: log }, p, [t], 'user_removed', log, new Date(), { actor: 'cli' });
      if (kept.length > 0)
        throw new Error(
          `token ${t.fingerprint} is still in its source (${t.source_ref ?? t.source}): its file was edited meanwhile or cannot be rewritten (see the warnings above), or it is a line of a New-API multi-key channel; try again or remove it there`,
        );
    }
    return print(io, `removed ${tokens.length} token(s) from tschk and their source; they are kept in token_archive`);
  });
};

const exportVerb: Verb = async (config, more, io) => {
  const { values } = args(more, {
    provider: { type: 'string' },
    pool: { type: 'string' },
    state: { type: 'string' },
    archived: { type: 'boolean' },
  });
  const state = stateOption(values.state);
  if (values.archived && state !== undefined) throw new UsageError('give --state or --archived, not both');
  return withDb(config, async (db) => {
    const p = values.provider ? await requireProvider(db, values.provider) : undefined;
    const secrets = values.archived
      ? [...new Set((await listArchive(db, { providerName: p?.name, pool: values.pool, unrestored: true })).map((a) => a.secret))]
      : (await listTokens(db, { providerId: p?.id, pool: values.pool, state })).map((t) => t.secret);
    io.stdout.write(secrets.map((t) => t + '\n').join(''));
    return EXIT.ok;
  });
};

const restoreVerb: Verb = async (config, more, io) => {
  const { values, positionals } = args(more, { provider: { type: 'string' }, pool: { type: 'string' } }, 1);
  const fp = positionals[0];
  if (!fp || !/^[0-9a-f]{12}$/i.test(fp))
    throw new UsageError('FINGERPRINT is required: the 12 hex characters shown by tokens list and in logs');
  return withDb(config, async (db) => {
    try {
      const r = await restoreArchived(
        { db, config, logger: logger(config, io, 'tokens') },
        fp.toLowerCase(),
        { provider: values.provider, pool: values.pool },
        new Date(),
        'cli',
      );
      const where = r.into === 'tokens' ? '' : ` (${r.into})`;
      return print(
        io,
        r.alreadyPresent
          ? `${r.mask} (${r.fingerprint}) is already in ${r.provider}/${r.pool}; archive marked restored`
          : `restored ${r.mask} (${r.fingerprint}) into ${r.provider}/${r.pool}${where}`,
      );
    } catch (err) {
      if (err instanceof RestoreError) throw new UsageError(err.message);
      throw err;
    }
  });
};

const VERBS: Record<string, Verb> = { import: importVerb, list: listVerb, remove: removeVerb, export: exportVerb, restore: restoreVerb };
