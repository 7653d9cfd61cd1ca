import { readFile } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { DestinationStream } from 'pino';
import { Agent } from 'undici';
import { checkerFor, providerKinds } from './checkers/index.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { Daemon } from './daemon.js';
import { openDatabase, type Db } from './db/connect.js';
import { listHistory } from './db/history.js';
import { migrateToLatest } from './db/migrate.js';
import { findProvider, findProviderById, listProviders, upsertProvider, type Provider } from './db/providers.js';
import { readLease } from './db/lease.js';
import { lastFinishedRun, runningRuns } from './db/runs.js';
import type { TokenRow, TokenState } from './db/schema.js';
import { findToken, findTokensByFingerprint, importTokens, listTokens, removeProviderAndTokens } from './db/tokens.js';
import { listArchive } from './db/archive.js';
import { restoreArchived, RestoreError } from './sources/restore.js';
import { RunBusyError, type HeldRun } from './engine/coordinator.js';
import { RunScopeError, runScope, type RunSummary } from './engine/run.js';
import { syncDeclaredProviders } from './sources/declared.js';
import { removeFromSources } from './sources/remove.js';
import { createLogger } from './logger.js';
import { hasNotifyTargets, sendTestNotifications } from './notify/index.js';
import { parseTokenLines } from './secret.js';
import { historyView, providerView, runView, tokenView } from './views.js';

export interface CliIo {
  env: Record<string, string | undefined>;
  stdout: Writable;
  stderr: Writable;
  stdin: Readable;
  /** Where logs go; defaults to stdout for `serve`, stderr for every other command. */
  logDestination?: DestinationStream;
  /** Resolves when the process is asked to stop (first SIGTERM/SIGINT). */
  shutdownRequested: Promise<void>;
}

/**
 * Exit codes: 0 done; 1 the work failed (a run failed or was aborted, the database is unreachable);
 * 2 bad usage or configuration; 3 `check --no-wait` met a run in flight that does not cover it.
 */
export const EXIT = { ok: 0, failed: 1, usage: 2, busy: 3 } as const;

class UsageError extends Error {}

const HELP: Record<string, string> = {
  main: `tschk — keeps pools of LLM access tokens healthy

Usage: tschk <command> [options]

Commands:
  serve                 run the daemon: schedule, HTTP API (default)
  check                 run one check now and print a summary
  migrate               create or update the database tables
  providers             list | add | remove check targets
  tokens                import | list | remove | export tokens
  history               recent checks, newest first
  status                tokens by state and the last run
  notify test           send a sample notification to every configured target

Every command takes --help. Configuration comes from the environment (see README).
Exit codes: 0 done, 1 the work failed, 2 bad usage or configuration.`,
  serve: `Usage: tschk serve

Runs the daemon: migrates the database, checks on TSCHK_CRON, serves HTTP on TSCHK_HTTP_PORT.
SIGTERM/SIGINT stop it gracefully; a second signal forces the exit.`,
  check: `Usage: tschk check [--provider P] [--pool POOL] [--force] [--force-prune] [--no-wait] [--json]

Checks every due token (or those of one provider/pool) once and prints a per-provider summary.
One run at a time goes on per database: when another process's run covers this one, its summary
is printed once it ends; otherwise this one waits for it, then runs.
  --provider P     only this provider
  --pool POOL      only this pool (default, free, …)
  --force          also tokens checked less than TSCHK_MIN_INTERVAL_S ago
  --force-prune    check again and prune even when a safety rule holds pruning (after a human looked)
  --no-wait        do not wait for another process's run: exit 3 instead
  --json           print the run summary as JSON
Exit: 0 the run completed, 1 it failed or could not run, 2 bad usage, 3 busy (--no-wait).`,
  migrate: `Usage: tschk migrate

Creates or updates tschk's tables in TSCHK_DATABASE_URL.`,
  providers: `Usage: tschk providers list [--json]
       tschk providers add NAME --kind KIND [--url URL] [--concurrency N]
       tschk providers remove NAME

Kinds: KINDS. A free-api's URL is its /token/check endpoint,
e.g. http://deepseek-free-api:8000/token/check. For an official kind --url overrides the API's base
URL (e.g. https://api.moonshot.ai); openai-compatible needs one, e.g. https://api.openai.com.
A deepseek-account token is account-password. Removing a provider archives its tokens.`,
  tokens: `Usage: tschk tokens import --provider P [--pool POOL] [--expect live|dead] [--label L] [FILE|-]
       tschk tokens list [--provider P] [--pool POOL] [--state S] [--json]
       tschk tokens remove (--id N | --fingerprint FP)
       tschk tokens export [--provider P] [--pool POOL] [--state S | --archived]
       tschk tokens restore FINGERPRINT [--provider P] [--pool POOL]

import: one token per line (a BOM, CRLF, blank lines and surrounding spaces are fine; T1,T2 is two
tokens); tokens already in the pool are skipped and counted. --expect marks a canary.
list shows masks and fingerprints only. export prints full tokens, one per line: mind where it goes;
--archived prints the pruned and removed ones not restored yet.
restore brings an archived token back where it came from (its token file line, its One-API
channel key, or tschk's table), active, at the end of its pool.`,
  history: `Usage: tschk history [--provider P] [--token ID|FINGERPRINT] [--limit N] [--json]

Recent checks, newest first (default limit 50).`,
  status: `Usage: tschk status [--json]

Tokens per provider, pool and state, and the last run.`,
  notify: `Usage: tschk notify test

Sends a sample digest to every TSCHK_WEBHOOK_URL and an "up" heartbeat to every
TSCHK_UPTIME_KUMA_PUSH monitor, and prints one line per target: ok or failed, and why.
Exit: 0 every target took it, 1 one failed, 2 nothing is configured or bad usage.`,
};

export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const [command = 'serve', ...rest] = argv;
  if (command === '--help' || command === '-h' || command === 'help') return print(io, HELP.main!);
  try {
    if (rest.includes('--help') || rest.includes('-h')) {
      const help = HELP[command];
      if (!help) throw new UsageError(`unknown command '${command}'; run tschk --help`);
      return print(io, help.replace('KINDS', providerKinds().join(', ')));
    }
    const config = loadConfig(io.env);
    switch (command) {
      case 'serve':
        args(rest, {});
        return await serve(config, io);
      case 'check':
        return await check(config, rest, io);
      case 'migrate':
        args(rest, {});
        return await withDb(config, async (db) => {
          const applied = await migrateToLatest(db);
          return print(io, applied.length ? `applied: ${applied.join(', ')}` : 'database is up to date');
        });
      case 'providers':
        return await providersCommand(config, rest, io);
      case 'tokens':
        return await tokensCommand(config, rest, io);
      case 'history':
        return await historyCommand(config, rest, io);
      case 'status':
        return await statusCommand(config, rest, io);
      case 'notify':
        return await notifyCommand(config, rest, io);
      default:
        throw new UsageError(`unknown command '${command}'; run tschk --help`);
    }
  } catch (err) {
    const usage = err instanceof UsageError || err instanceof ConfigError || isParseArgsError(err);
    const message = (err instanceof Error ? err.message : String(err)).split('\n')[0];
    const prefix = usage && Object.hasOwn(HELP, command) && !(err instanceof ConfigError) ? `${command}: ` : '';
    io.stderr.write(`tschk: ${prefix}${message}\n`);
    return usage ? EXIT.usage : EXIT.failed;
  }
}

function isParseArgsError(err: unknown): boolean {
  return err instanceof TypeError && /^ERR_PARSE_ARGS_/.test(String((err as { code?: unknown }).code));
}

function print(io: CliIo, text: string): number {
  io.stdout.write(text.endsWith('\n') ? text : text + '\n');
  return EXIT.ok;
}

function args<T extends NonNullable<ParseArgsConfig['options']>>(rest: string[], options: T, positionals = 0) {
  const parsed = parseArgs({ args: rest, options, allowPositionals: true, strict: true });
  if (parsed.positionals.length > positionals) {
    throw new UsageError(`unexpected argument '${parsed.positionals[positionals]}'`);
  }
  return parsed;
}

function logger(config: Readonly<Config>, io: CliIo, command: string) {
  // One-shot commands print their own result; their logs stay quiet unless LOG_LEVEL asks.
  const level = command === 'serve' || io.env.LOG_LEVEL !== undefined ? config.logLevel : 'warn';
  return createLogger(
    level,
    io.logDestination ?? (command === 'serve' ? undefined : { write: (s: string) => io.stderr.write(s) }),
  );
}

async function serve(config: Readonly<Config>, io: CliIo): Promise<number> {
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
}

async function check(config: Readonly<Config>, rest: string[], io: CliIo): Promise<number> {
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
}

function describeHeld(held: HeldRun): string {
  const run = held.runId === null ? 'the run being opened' : `run ${held.runId}`;
  const where = held.host ? ` on ${held.host} (pid ${held.pid})` : '';
  const since = held.since ? ` since ${held.since.toISOString()}` : '';
  return `${run} (${runScope(held.scope)})${where}${since}`;
}

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
    note: [p.error, p.unreachable && 'unreachable', p.unreliable && 'canary disagreed', p.heldReason && `pruning held: ${p.heldReason}`].filter(Boolean).join('; '),
  }));
  const head = `run ${s.runId} ${s.status} (${s.scope}): ${s.checked} checked — ${s.live} live, ${s.dead} dead, ${s.exhausted} exhausted, ${s.unknown} unknown in ${(s.durationMs / 1000).toFixed(1)} s`;
  return [head, ...(rows.length ? [table(rows)] : ['no provider in scope']), ...(s.error ? [`error: ${s.error}`] : [])].join('\n');
}

async function withDb(config: Readonly<Config>, fn: (db: Db) => Promise<number>): Promise<number> {
  const db = openDatabase(config.database.url);
  try {
    await migrateToLatest(db);
    // `tokens import --provider deep` works as soon as TokenStatuCheckUrls__Deep… is set, before any `serve`.
    await syncDeclaredProviders(db, config);
    return await fn(db);
  } finally {
    await db.close();
  }
}

async function requireProvider(db: Db, name: string | undefined): Promise<Provider> {
  if (!name) throw new UsageError('--provider is required');
  const p = await findProvider(db, name);
  if (!p) throw new UsageError(`unknown provider '${name}'; see tschk providers list`);
  return p;
}

async function providersCommand(config: Readonly<Config>, rest: string[], io: CliIo): Promise<number> {
  const [verb, ...more] = rest;
  switch (verb) {
    case 'list': {
      const { values } = args(more, { json: { type: 'boolean' } });
      return withDb(config, async (db) => {
        const providers = (await listProviders(db)).map((p) => providerView(p, config));
        if (values.json) return print(io, JSON.stringify(providers, null, 2));
        if (providers.length === 0) return print(io, 'no providers; add one with tschk providers add NAME --kind free-api --url URL');
        return print(
          io,
          table(providers.map((p) => ({ name: p.name, kind: p.kind, url: p.check_url ?? '(default)', enabled: p.enabled ? 'yes' : 'no', concurrency: p.concurrency ?? '' }))),
        );
      });
    }
    case 'add': {
      const { values, positionals } = args(more, { kind: { type: 'string' }, url: { type: 'string' }, concurrency: { type: 'string' } }, 1);
      const name = positionals[0];
      if (!name || !/^[a-z0-9][a-z0-9_-]{0,63}$/i.test(name)) {
        throw new UsageError('NAME is required: letters, digits, - and _, at most 64');
      }
      const kind = values.kind ?? '';
      const checker = checkerFor(kind);
      if (!checker) throw new UsageError(`--kind must be one of ${providerKinds().join(', ')}; got '${kind}'`);
      if (checker.requiresUrl && !values.url) throw new UsageError(`--url is required for kind ${kind}`);
      if (values.url !== undefined && !/^https?:\/\/[^\s]+$/i.test(values.url)) {
        throw new UsageError(`--url must be an http(s) URL; got '${values.url}'`);
      }
      maxLength('--url', values.url, 1024);
      const concurrency = values.concurrency === undefined ? null : Number(values.concurrency);
      if (concurrency !== null && (!Number.isInteger(concurrency) || concurrency < 1)) {
        throw new UsageError(`--concurrency must be a whole number ≥ 1; got '${values.concurrency}'`);
      }
      return withDb(config, async (db) => {
        const p = await upsertProvider(db, { name, kind, checkUrl: values.url ?? null, concurrency });
        return print(io, `provider ${p.name} (${p.kind}) saved`);
      });
    }
    case 'remove': {
      const { positionals } = args(more, {}, 1);
      return withDb(config, async (db) => {
        const p = await requireProvider(db, positionals[0]);
        const declared = config.legacyProviders.find((d) => d.name === p.name);
        if (declared) throw new UsageError(`provider '${p.name}' is declared by ${declared.variable}; unset it first, or it comes back at the next start`);
        const archived = await removeProviderAndTokens(db, p);
        return print(io, `provider ${p.name} removed; ${archived} token(s) archived`);
      });
    }
    default:
      throw new UsageError(`expected list, add or remove; see tschk providers --help`);
  }
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

/** `max` is the width of the column the value goes to. */
function maxLength(option: string, value: string | undefined, max: number): void {
  if (value !== undefined && [...value].length > max) throw new UsageError(`${option} must be at most ${max} characters; got ${[...value].length}`);
}

const STATES: readonly TokenState[] = ['active', 'suspect', 'invalid', 'disabled'];

function stateOption(raw: string | undefined): TokenState | undefined {
  if (raw === undefined) return undefined;
  if (!STATES.includes(raw as TokenState)) throw new UsageError(`--state must be one of ${STATES.join(', ')}; got '${raw}'`);
  return raw as TokenState;
}

async function tokensCommand(config: Readonly<Config>, rest: string[], io: CliIo): Promise<number> {
  const [verb, ...more] = rest;
  switch (verb) {
    case 'import': {
      const { values, positionals } = args(
        more,
        { provider: { type: 'string' }, pool: { type: 'string' }, expect: { type: 'string' }, label: { type: 'string' } },
        1,
      );
      if (values.expect !== undefined && values.expect !== 'live' && values.expect !== 'dead') {
        throw new UsageError(`--expect must be live or dead; got '${values.expect}'`);
      }
      if (values.pool !== undefined && !/^[a-z0-9][a-z0-9_-]{0,63}$/i.test(values.pool)) {
        throw new UsageError(`--pool must be letters, digits, - and _, at most 64; got '${values.pool.slice(0, 80)}'`);
      }
      maxLength('--label', values.label, 255);
      const text = await readInput(io, positionals[0]);
      return withDb(config, async (db) => {
        const p = await requireProvider(db, values.provider);
        const r = await importTokens(db, {
          providerId: p.id,
          pool: values.pool ?? 'default',
          entries: parseTokenLines(text),
          source: 'cli',
          wholeEntries: checkerFor(p.kind)?.wholeEntries,
          label: values.label,
          expect: (values.expect as 'live' | 'dead' | undefined) ?? null,
        });
        return print(io, `imported ${r.added} token(s) into ${p.name}/${values.pool ?? 'default'}; skipped ${r.duplicates} duplicate(s)`);
      });
    }
    case 'list': {
      const { values } = args(more, { provider: { type: 'string' }, pool: { type: 'string' }, state: { type: 'string' }, json: { type: 'boolean' } });
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
    }
    case 'remove': {
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
          const kept = await removeFromSources({ db, config, logger: log }, p, [t], 'user_removed', log);
          if (kept.length > 0) throw new Error(`token ${t.fingerprint} is still in its source (${t.source_ref ?? t.source}): its file was edited meanwhile or cannot be rewritten (see the warnings above), or it is a line of a New-API multi-key channel; try again or remove it there`);
        }
        return print(io, `removed ${tokens.length} token(s) from tschk and their source; they are kept in token_archive`);
      });
    }
    case 'export': {
      const { values } = args(more, { provider: { type: 'string' }, pool: { type: 'string' }, state: { type: 'string' }, archived: { type: 'boolean' } });
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
    }
    case 'restore': {
      const { values, positionals } = args(more, { provider: { type: 'string' }, pool: { type: 'string' } }, 1);
      const fp = positionals[0];
      if (!fp || !/^[0-9a-f]{12}$/i.test(fp)) throw new UsageError('FINGERPRINT is required: the 12 hex characters shown by tokens list and in logs');
      return withDb(config, async (db) => {
        try {
          const r = await restoreArchived({ db, config, logger: logger(config, io, 'tokens') }, fp.toLowerCase(), { provider: values.provider, pool: values.pool });
          const where = r.into === 'tokens' ? '' : ` (${r.into})`;
          return print(io, r.alreadyPresent
            ? `${r.mask} (${r.fingerprint}) is already in ${r.provider}/${r.pool}; archive marked restored`
            : `restored ${r.mask} (${r.fingerprint}) into ${r.provider}/${r.pool}${where}`);
        } catch (err) {
          if (err instanceof RestoreError) throw new UsageError(err.message);
          throw err;
        }
      });
    }
    default:
      throw new UsageError(`expected import, list, remove, export or restore; see tschk tokens --help`);
  }
}

async function historyCommand(config: Readonly<Config>, rest: string[], io: CliIo): Promise<number> {
  const { values } = args(rest, { provider: { type: 'string' }, token: { type: 'string' }, limit: { type: 'string' }, json: { type: 'boolean' } });
  const limit = values.limit === undefined ? 50 : Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100_000) throw new UsageError(`--limit must be a whole number from 1 to 100000; got '${values.limit}'`);
  return withDb(config, async (db) => {
    const p = values.provider ? await requireProvider(db, values.provider) : undefined;
    let tokenId: number | undefined;
    if (values.token !== undefined) {
      const t = /^\d+$/.test(values.token) ? await findToken(db, Number(values.token)) : (await findTokensByFingerprint(db, values.token))[0];
      if (!t) throw new UsageError(`no token '${values.token}' (give an id or a fingerprint)`);
      tokenId = t.id;
    }
    const names = new Map((await listProviders(db)).map((x) => [x.id, x.name]));
    const rows = (await listHistory(db, { providerId: p?.id, tokenId, limit })).map((h) => ({
      provider: names.get(h.provider_id) ?? null,
      ...historyView(h, db.dialect),
    }));
    if (values.json) return print(io, JSON.stringify(rows, null, 2));
    const line = (r: (typeof rows)[number]) => ({
      checked_at: r.checked_at,
      provider: r.provider,
      token: r.token_id,
      fingerprint: r.fingerprint,
      verdict: r.verdict,
      reason: r.reason,
      http: r.http_status,
      ms: r.latency_ms,
      balance: r.balance ? `${r.balance} ${r.currency ?? ''}`.trim() : '',
    });
    return print(io, rows.length ? table(rows.map(line)) : 'no history yet');
  });
}

async function statusCommand(config: Readonly<Config>, rest: string[], io: CliIo): Promise<number> {
  const { values } = args(rest, { json: { type: 'boolean' } });
  return withDb(config, async (db) => {
    const providers = await listProviders(db);
    const counts = await db.kysely
      .selectFrom('tokens')
      .select((eb) => ['provider_id', 'pool', 'state', eb.fn.countAll().as('n')])
      .groupBy(['provider_id', 'pool', 'state'])
      .execute();
    const pools = new Map<string, { provider: string; pool: string; active: number; suspect: number; invalid: number; disabled: number }>();
    for (const c of counts) {
      const provider = providers.find((p) => p.id === c.provider_id)?.name ?? String(c.provider_id);
      const key = `${provider}/${c.pool}`;
      const row = pools.get(key) ?? { provider, pool: c.pool, active: 0, suspect: 0, invalid: 0, disabled: 0 };
      row[c.state] = Number(c.n);
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
        : running.length ? 'no run finished yet' : 'no run yet',
    );
    return print(io, lines.join('\n'));
  });
}

async function notifyCommand(config: Readonly<Config>, rest: string[], io: CliIo): Promise<number> {
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
}

type Cell = string | number | boolean | null | undefined;

/** Plain aligned columns; undefined columns are dropped. */
export function table(rows: Array<Record<string, Cell>>): string {
  const columns = [...new Set(rows.flatMap((r) => Object.keys(r).filter((k) => r[k] !== undefined)))];
  const cell = (v: Cell) => (v === null || v === undefined ? '' : String(v));
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (values: string[]) => values.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(columns), ...rows.map((r) => line(columns.map((c) => cell(r[c]))))].join('\n');
}
