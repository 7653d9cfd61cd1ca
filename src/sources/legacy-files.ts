import { dirname, join } from 'node:path';
import { LEGACY_SERVICES, type Config } from '../config.js';
import { realClock } from '../engine/limits.js';
import { findProvider, upsertProvider, type Provider } from '../db/providers.js';
import type { TokenRow } from '../db/schema.js';
import { hasSourceTokens } from '../db/tokens.js';
import { closeTokenFile, folderExists, LineReader, openTokenFile, TokenFileUnreadable, type OpenTokenFile } from './file-read.js';
import type { SourceContext } from '../context.js';
import { reconcilePoolInBatches, type SourceEntry } from './reconcile.js';
import { SourceNotEdited, type Source, type SourceEdit, type SyncScope } from './types.js';
import {
  appendLines,
  judgeTokenFile,
  lineEntries,
  readIfExists,
  rewriteTokenFile,
  scanTokenFile,
  withFileLock,
  type FileScan,
  type LineSplit,
} from './token-file.js';

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
 * A file that cannot be read (not a regular file, a read that does not answer) or is not a token
 * list changes nothing either: its pool keeps its last known list.
 */
async function syncLegacyFiles(ctx: SourceContext, scope: SyncScope): Promise<void> {
  const dir = ctx.config.legacyDataDir;
  if (dir === undefined) return;
  for (const file of legacyTokenFiles(ctx.config)) {
    if (scope.provider !== undefined && scope.provider !== file.provider) continue;
    if (scope.pool !== undefined && scope.pool !== file.pool) continue;
    if (ctx.stopSignal?.aborted) return;
    await withFileLock(join(dir, file.path), () => syncTokenFile(ctx, dir, file)).catch((err: unknown) => {
      if (ctx.stopSignal?.aborted) return;
      const fields = { provider: file.provider, pool: file.pool, file: file.path };
      if (err instanceof TokenFileUnreadable) {
        ctx.logger.error({ ...fields, reason: err.reason }, `${err.message}; its tokens keep their last known list`);
        return;
      }
      const message = err instanceof Error ? err.message : String(err);
      ctx.logger.error({ ...fields, err: message }, 'token file could not be synced; its tokens keep their last known list');
    });
  }
}

/**
 * How long a file that suddenly reads empty or missing is given before its pool is emptied: an
 * editor or a script may have truncated or replaced it a moment before writing it again.
 */
const EMPTY_FILE_REREAD_MS = 1_000;

/** A read of a token file that is to be used: what its first pass found, and what to tell about it. */
interface Read {
  file: OpenTokenFile | undefined;
  scan: FileScan | undefined;
  warning?: string;
}

async function syncTokenFile(ctx: SourceContext, dir: string, file: TokenFile): Promise<void> {
  const abs = join(dir, file.path);
  const signal = ctx.stopSignal;
  if (!(await folderExists(dirname(abs), abs, signal))) return;
  const fields = { provider: file.provider, pool: file.pool, file: file.path };
  let read: Read | undefined;
  try {
    read = await readTokenFile(ctx, abs, file);
    if (!read) return;
    const provider =
      read.file && file.creates
        ? await upsertProvider(ctx.db, { name: file.provider, kind: file.creates.kind, checkUrl: file.creates.checkUrl })
        : await findProvider(ctx.db, file.provider);
    if (!provider) return;
    if ((read.scan?.tokens ?? 0) === 0 && (await hasSourceTokens(ctx.db, { providerId: provider.id, pool: file.pool, source: 'file' }))) {
      closeTokenFile(read.file);
      read = undefined;
      await (ctx.clock ?? realClock).sleep(EMPTY_FILE_REREAD_MS, signal);
      read = await readTokenFile(ctx, abs, file);
      if (!read) return;
    }
    const scan = read.scan;
    if (scan && read.warning)
      ctx.logger.warn({ ...fields, skipped: scan.bad, lines: scan.badLines, problems: scan.problems }, read.warning);
    const second = read.file && new LineReader(read.file);
    const r = await reconcilePoolInBatches(
      ctx.db,
      { providerId: provider.id, providerName: provider.name, pool: file.pool, source: 'file' },
      second ? fileEntries(second, file) : [],
      // The second pass must have read what the first judged: a file rewritten in place meanwhile keeps its tokens until the next sync.
      { signal, complete: () => !second || (second.digest === scan?.digest && !second.binary) },
    );
    if (r.incomplete && !signal?.aborted) {
      ctx.logger.warn({ ...fields }, 'token file changed while tschk read it: no token leaves its pool until the next sync');
    }
    if (r.added > 0 || r.removed > 0) {
      ctx.logger.info({ ...fields, provider: provider.name, added: r.added, removed: r.removed }, 'token file synced');
    }
  } finally {
    closeTokenFile(read?.file);
  }
}

/**
 * Opens and scans the file (undefined file: there is none). Undefined when it is not to be used:
 * mostly lines that cannot be tokens, or binary; that is logged here.
 */
async function readTokenFile(ctx: SourceContext, abs: string, file: TokenFile): Promise<Read | undefined> {
  const opened = await openTokenFile(abs, ctx.stopSignal);
  if (!opened) return { file: undefined, scan: undefined };
  try {
    const scan = await scanTokenFile(new LineReader(opened), file.split);
    const verdict = judgeTokenFile(scan);
    if (!verdict.use) {
      ctx.logger.error(
        {
          provider: file.provider,
          pool: file.pool,
          file: file.path,
          lines: scan.lines,
          bad: scan.bad,
          badLines: scan.badLines,
          binary: scan.binary,
        },
        verdict.error,
      );
      closeTokenFile(opened);
      return undefined;
    }
    return { file: opened, scan, warning: verdict.warning };
  } catch (err) {
    closeTokenFile(opened);
    throw err;
  }
}

/** The file's entries, a chunk of lines at a time, lines that cannot be tokens left out. */
async function* fileEntries(reader: LineReader, file: TokenFile): AsyncGenerator<SourceEntry[]> {
  for await (const lines of reader.lines()) {
    const out: SourceEntry[] = [];
    for (const line of lines) {
      for (const secret of lineEntries(line.text, file.split, line.overlong).secrets)
        out.push({ secret, sourceRef: `${file.path}:${line.number}` });
    }
    yield out;
  }
}

/**
 * File tokens leave their file (delete mode, or a user's removal): one edit per file rewrites it
 * without them (their lines appended to `expire_token.json` beside it) inside the transaction that
 * archives their rows, and the file is read again after. The file cannot change under the edit
 * (the user kept editing it, or it cannot be rewritten from here: mounted on its own, read-only):
 * then its tokens stay, in the file and in tschk.
 */
async function planFileRemoval(ctx: SourceContext, provider: Provider, tokens: readonly TokenRow[]): Promise<SourceEdit[]> {
  const dir = ctx.config.legacyDataDir;
  const files = legacyTokenFiles(ctx.config);
  const byFile = new Map<string, TokenRow[]>();
  for (const t of tokens) {
    const path = fileOfSourceRef(t.source_ref) ?? '';
    byFile.set(path, [...(byFile.get(path) ?? []), t]);
  }
  const edits: SourceEdit[] = [];
  for (const [path, rows] of byFile) {
    const file = files.find((f) => f.path === path && f.provider === provider.name);
    // No file tschk still reads: the row is all there is.
    if (dir === undefined || !file) edits.push({ tokens: rows, staying: [] });
    else edits.push(fileEdit(ctx, dir, file, provider, rows));
  }
  return edits;
}

function fileEdit(ctx: SourceContext, dir: string, file: TokenFile, provider: Provider, rows: readonly TokenRow[]): SourceEdit {
  const abs = join(dir, file.path);
  const fields = { provider: provider.name, file: file.path, tokens: rows.length };
  return {
    tokens: rows,
    staying: [],
    exclusive: (fn) => withFileLock(abs, fn),
    async apply() {
      try {
        const expired = join(dirname(abs), EXPIRED_FILE);
        // Refused before the token file changes (a FIFO in its place): the dead lines need somewhere to go.
        await readIfExists(expired);
        const r = await rewriteTokenFile(abs, new Set(rows.map((t) => t.secret)), file.split);
        if ('conflict' in r)
          throw new SourceNotEdited('token file kept changing while tschk rewrote it: its tokens stay in it for now', 'warn', fields);
        if ('unwritable' in r) throw new SourceNotEdited(unwritableMessage(r.unwritable), 'error', { ...fields, code: r.unwritable });
        await appendLines(expired, r.removed, r.mode, r.eol);
      } catch (err) {
        if (err instanceof TokenFileUnreadable)
          throw new SourceNotEdited(`${err.message}; its tokens stay in it for now`, 'error', { ...fields, reason: err.reason });
        throw err;
      }
    },
    after: () => syncTokenFile(ctx, dir, file),
  };
}

/** Restores an archived file token: its line goes back at the end of its file; the next sync picks it up. */
async function appendToTokenFile(
  ctx: SourceContext,
  providerName: string,
  sourceRef: string | null,
  secret: string,
): Promise<string | undefined> {
  const dir = ctx.config.legacyDataDir;
  const path = fileOfSourceRef(sourceRef);
  const file = legacyTokenFiles(ctx.config).find((f) => f.path === path && f.provider === providerName);
  if (dir === undefined || !file) return undefined;
  const abs = join(dir, file.path);
  if (!(await folderExists(dirname(abs), abs))) return undefined;
  await withFileLock(abs, async () => {
    await appendLines(abs, [secret], 0o600);
    await syncTokenFile(ctx, dir, file);
  });
  return file.path;
}

/** The original's token files (`TSCHK_LEGACY_DATA_DIR`) as a source. */
export const tokenFiles: Source = {
  name: 'file',
  configured: (config) => config.legacyDataDir !== undefined,
  sync: syncLegacyFiles,
  planRemoval: (ctx, provider, tokens) => planFileRemoval(ctx, provider, tokens),
  restore: (ctx, provider, archived) => appendToTokenFile(ctx, provider.name, archived.sourceRef, archived.secret),
};

function unwritableMessage(code: string): string {
  return code === 'EBUSY' || code === 'EXDEV'
    ? 'token file cannot be replaced: it looks mounted on its own; mount its folder instead (as the original did with ./data). Its tokens stay in it'
    : `token file cannot be rewritten: its folder is read-only for tschk (${code}). Its tokens stay in it`;
}
