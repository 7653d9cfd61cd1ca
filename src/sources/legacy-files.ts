import { access } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { LEGACY_SERVICES, type Config } from '../config.js';
import { realClock } from '../engine/limits.js';
import { findProvider, upsertProvider, type Provider } from '../db/providers.js';
import type { TokenRow } from '../db/schema.js';
import { archiveAndDeleteTokens, poolTokens, removeTokens } from '../db/tokens.js';
import type { SourceContext } from './index.js';
import { reconcilePool } from './reconcile.js';
import { appendLines, parseTokenFile, readIfExists, rewriteTokenFile, withFileLock, type LineSplit } from './token-file.js';

/** One file of the original's data folder (`TSCHK_LEGACY_DATA_DIR`) and the pool it fills. */
export interface TokenFile {
  provider: string;
  pool: string;
  /** Relative to the data folder, `/`-separated: `LLM-Deep/token.json`. Also the start of `source_ref`. */
  path: string;
  split: LineSplit;
  /** The OfficialToken files bring their provider with them; an `LLM-*` folder needs a configured one. */
  creates?: { kind: string; checkUrl: string };
}

const EXPIRED_FILE = 'expire_token.json';

/** The original's layout (docs/legacy-rest.md, "Token files"). */
function legacyTokenFiles(config: Readonly<Config>): TokenFile[] {
  const files: TokenFile[] = LEGACY_SERVICES.flatMap(({ name, suffix }) => [
    { provider: name, pool: 'default', path: `LLM-${suffix}/token.json`, split: 'commas' as const },
    { provider: name, pool: 'free', path: `LLM-${suffix}/token2.json`, split: 'commas' as const },
  ]);
  files.push(
    {
      provider: 'deep_user',
      pool: 'default',
      path: 'OfficialToken/deep_user.json',
      split: 'whole-line',
      creates: { kind: 'deepseek-account', checkUrl: config.deepseek.platformUrl },
    },
    {
      provider: 'deep_key',
      pool: 'default',
      path: 'OfficialToken/deep_key.json',
      split: 'commas',
      creates: { kind: 'deepseek-key', checkUrl: config.deepseek.apiUrl },
    },
  );
  return files;
}

/** `LLM-Deep/token.json:3` → `LLM-Deep/token.json`. */
function fileOfSourceRef(ref: string | null): string | undefined {
  const m = ref === null ? null : /^(.+):\d+$/.exec(ref);
  return m?.[1];
}

/**
 * Brings the token files in scope into `tokens`. A folder that does not exist changes nothing (an
 * unmounted volume must not empty a pool); a file missing from an existing folder is an empty pool.
 */
export async function syncLegacyFiles(ctx: SourceContext, scope: { provider?: string; pool?: string }): Promise<void> {
  const dir = ctx.config.legacyDataDir;
  if (dir === undefined) return;
  for (const file of legacyTokenFiles(ctx.config)) {
    if (scope.provider !== undefined && scope.provider !== file.provider) continue;
    if (scope.pool !== undefined && scope.pool !== file.pool) continue;
    await withFileLock(join(dir, file.path), () => syncTokenFile(ctx, dir, file)).catch((err: unknown) => {
      const message = err instanceof Error ? err.message : String(err);
      ctx.logger.error({ file: file.path, err: message }, 'token file could not be synced; its tokens keep their last known list');
    });
  }
}

/**
 * How long a file that suddenly reads empty or missing is given before its pool is emptied: an
 * editor or a script may have truncated or replaced it a moment before writing it again.
 */
const EMPTY_FILE_REREAD_MS = 1_000;

async function syncTokenFile(ctx: SourceContext, dir: string, file: TokenFile): Promise<void> {
  const abs = join(dir, file.path);
  if (!(await exists(dirname(abs)))) return;
  const text = await readIfExists(abs);
  const provider =
    text !== undefined && file.creates
      ? await upsertProvider(ctx.db, { name: file.provider, kind: file.creates.kind, checkUrl: file.creates.checkUrl })
      : await findProvider(ctx.db, file.provider);
  if (!provider) return;
  const entriesOf = (t: string | undefined) =>
    parseTokenFile(t ?? '', file.split).map((e) => ({ secret: e.secret, sourceRef: `${file.path}:${e.line}` }));
  let entries = entriesOf(text);
  if (entries.length === 0 && (await poolTokens(ctx.db, provider.id, file.pool)).some((t) => t.source === 'file')) {
    await (ctx.clock ?? realClock).sleep(EMPTY_FILE_REREAD_MS);
    entries = entriesOf(await readIfExists(abs));
  }
  const r = await reconcilePool(ctx.db, { providerId: provider.id, providerName: provider.name, pool: file.pool, source: 'file' }, entries);
  if (r.added > 0 || r.removed > 0) {
    ctx.logger.info({ provider: provider.name, pool: file.pool, file: file.path, added: r.added, removed: r.removed }, 'token file synced');
  }
}

/**
 * File tokens leave their file (delete mode, or a user's removal): archive and delete the rows, and in the same transaction rewrite
 * the file without them (their lines appended to `expire_token.json` beside it). Returns the
 * tokens that could not leave their file: the user kept editing it, or it cannot be rewritten
 * from here (mounted on its own, read-only).
 */
export async function deleteFromTokenFiles(
  ctx: SourceContext,
  provider: Provider,
  tokens: readonly TokenRow[],
  reason: string,
  now = new Date(),
): Promise<TokenRow[]> {
  const dir = ctx.config.legacyDataDir;
  const files = legacyTokenFiles(ctx.config);
  const byFile = new Map<string, TokenRow[]>();
  for (const t of tokens) {
    const path = fileOfSourceRef(t.source_ref) ?? '';
    byFile.set(path, [...(byFile.get(path) ?? []), t]);
  }
  const kept: TokenRow[] = [];
  for (const [path, rows] of byFile) {
    const file = files.find((f) => f.path === path && f.provider === provider.name);
    if (dir === undefined || !file) {
      // No file tschk still reads: the row is all there is.
      await removeTokens(ctx.db, rows, provider.name, reason);
      continue;
    }
    const abs = join(dir, file.path);
    await withFileLock(abs, async () => {
      const done = await ctx.db.kysely.transaction().execute(async (trx) => {
        await archiveAndDeleteTokens(trx, ctx.db, rows, provider.name, reason, now);
        const r = await rewriteTokenFile(abs, new Set(rows.map((t) => t.secret)), file.split);
        if ('conflict' in r) throw new FileConflict();
        if ('unwritable' in r) throw new FileUnwritable(r.unwritable);
        await appendLines(join(dirname(abs), EXPIRED_FILE), r.removed, r.mode, r.eol);
        return true;
      }).catch((err) => {
        if (err instanceof FileConflict || err instanceof FileUnwritable) return err;
        throw err;
      });
      if (done instanceof FileConflict) {
        ctx.logger.warn({ provider: provider.name, file: file.path, tokens: rows.length }, 'token file kept changing while tschk rewrote it: its tokens stay in it for now');
      } else if (done instanceof FileUnwritable) {
        ctx.logger.error({ provider: provider.name, file: file.path, tokens: rows.length, code: done.code }, done.message);
      }
      if (done !== true) {
        kept.push(...rows);
        return;
      }
      await syncTokenFile(ctx, dir, file);
    });
  }
  return kept;
}

/** Restores an archived file token: its line goes back at the end of its file; the next sync picks it up. */
export async function appendToTokenFile(ctx: SourceContext, providerName: string, sourceRef: string | null, secret: string): Promise<string | undefined> {
  const dir = ctx.config.legacyDataDir;
  const path = fileOfSourceRef(sourceRef);
  const file = legacyTokenFiles(ctx.config).find((f) => f.path === path && f.provider === providerName);
  if (dir === undefined || !file) return undefined;
  const abs = join(dir, file.path);
  if (!(await exists(dirname(abs)))) return undefined;
  await withFileLock(abs, async () => {
    await appendLines(abs, [secret], 0o600);
    await syncTokenFile(ctx, dir, file);
  });
  return file.path;
}

class FileConflict extends Error {}

class FileUnwritable extends Error {
  constructor(readonly code: string) {
    super(
      code === 'EBUSY' || code === 'EXDEV'
        ? 'token file cannot be replaced: it looks mounted on its own; mount its folder instead (as the original did with ./data). Its tokens stay in it'
        : `token file cannot be rewritten: its folder is read-only for tschk (${code}). Its tokens stay in it`,
    );
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
