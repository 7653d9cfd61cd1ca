import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, realpath, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { MAX_TOKEN_LENGTH, tokenLineProblem, type LineProblem } from '../secret.js';
import { readTokenFileText, TokenFileUnreadable, type LineReader } from './file-read.js';

/**
 * How the entries of one line are found. A free-api line `T1,T2` holds two tokens (the free-api
 * picks one per request); a DeepSeek account line `account-password` is one entry whatever
 * its password contains, commas included.
 */
export type LineSplit = 'commas' | 'whole-line';

export interface FileEntry {
  secret: string;
  /** 1-based line of the file, blank lines counted: what a user sees in an editor. */
  line: number;
}

const BOM = '\uFEFF';

function lines(text: string): string[] {
  return text.replace(/^\uFEFF/, '').split(/\r\n|\n|\r/);
}

function entriesOf(line: string, split: LineSplit): string[] {
  const trimmed = line.trim();
  if (trimmed === '') return [];
  return split === 'commas'
    ? trimmed
        .split(',')
        .map((t) => t.trim())
        .filter(Boolean)
    : [trimmed];
}

/** Pure: the tokens of one line of a token file, or why it holds none that may be sent upstream. */
export function lineEntries(line: string, split: LineSplit, overlong = false): { secrets: string[]; problem?: LineProblem } {
  if (overlong) return { secrets: [], problem: 'too_long' };
  const problem = tokenLineProblem(line.trim());
  return problem ? { secrets: [], problem } : { secrets: entriesOf(line, split) };
}

/**
 * Pure: the entries of a token file, in order; a BOM, CRLF, blank lines and surrounding spaces are
 * fine; lines that cannot be tokens are left out.
 */
export function parseTokenFile(text: string, split: LineSplit): FileEntry[] {
  return lines(text).flatMap((line, i) => lineEntries(line, split).secrets.map((secret) => ({ secret, line: i + 1 })));
}

/** What one read of a token file found, without keeping its tokens. */
export interface FileScan {
  /** Lines that are not blank. */
  lines: number;
  tokens: number;
  /** Lines that cannot be tokens: how many, the first few numbers, how many of each kind. */
  bad: number;
  badLines: number[];
  problems: Partial<Record<LineProblem, number>>;
  /** A NUL byte near the start: binary data, or text in UTF-16. */
  binary: boolean;
  digest: string | undefined;
}

const BAD_LINES_NAMED = 5;

/** Reads the file once, counting; stops at once if it is binary. */
export async function scanTokenFile(reader: LineReader, split: LineSplit): Promise<FileScan> {
  const scan: FileScan = { lines: 0, tokens: 0, bad: 0, badLines: [], problems: {}, binary: false, digest: undefined };
  for await (const chunk of reader.lines()) {
    if (reader.binary) {
      scan.binary = true;
      break;
    }
    for (const line of chunk) {
      if (!line.overlong && line.text.trim() === '') continue;
      scan.lines++;
      const { secrets, problem } = lineEntries(line.text, split, line.overlong);
      scan.tokens += secrets.length;
      if (problem === undefined) continue;
      scan.bad++;
      scan.problems[problem] = (scan.problems[problem] ?? 0) + 1;
      if (scan.badLines.length < BAD_LINES_NAMED) scan.badLines.push(line.number);
    }
  }
  scan.digest = reader.digest;
  return scan;
}

export type FileJudgement = { use: true; warning?: string } | { use: false; error: string };

/**
 * Pure: whether a token file is used, and what to tell the user. Lines that cannot be tokens are
 * skipped with a warning; a file that is mostly such lines, or holds binary data, is not a token
 * list at all (a binary file, one saved as UTF-16, the wrong file mounted): it is left alone.
 */
export function judgeTokenFile(scan: FileScan): FileJudgement {
  if (scan.binary) {
    return {
      use: false,
      error:
        'token file holds binary data (NUL bytes; a text file must be saved as UTF-8): left alone, its tokens keep their last known list',
    };
  }
  if (scan.bad === 0) return { use: true };
  const which = `${scan.bad === 1 ? 'line' : 'lines'} ${scan.badLines.join(', ')}${scan.bad > scan.badLines.length ? ` and ${scan.bad - scan.badLines.length} more` : ''}`;
  if (scan.bad * 2 > scan.lines) {
    return {
      use: false,
      error: `token file does not look like a token list: ${scan.bad} of its ${scan.lines} lines cannot be tokens (${which}): left alone, its tokens keep their last known list`,
    };
  }
  return {
    use: true,
    warning: `token file has ${scan.bad} ${scan.bad === 1 ? 'line' : 'lines'} that cannot be tokens (control characters, not UTF-8, or longer than ${MAX_TOKEN_LENGTH} characters), skipped: ${which}`,
  };
}

/**
 * Pure: the file without the given entries. Untouched lines keep their exact bytes (line endings,
 * spaces, blank lines, the BOM); a `T1,T2` line whose T2 goes becomes `T1`; a line left empty goes.
 */
export function removeFromTokenFile(text: string, dead: ReadonlySet<string>, split: LineSplit): { text: string; removed: string[] } {
  const bom = text.startsWith(BOM) ? BOM : '';
  const parts = text.slice(bom.length).split(/(\r\n|\n|\r)/);
  const removed: string[] = [];
  const out: string[] = [];
  for (let i = 0; i < parts.length; i += 2) {
    const line = parts[i]!;
    const eol = parts[i + 1] ?? '';
    const entries = entriesOf(line, split);
    const gone = entries.filter((e) => dead.has(e));
    if (gone.length === 0) {
      out.push(line + eol);
      continue;
    }
    removed.push(...gone);
    const kept = entries.filter((e) => !dead.has(e));
    if (kept.length > 0) out.push(kept.join(',') + eol);
  }
  return { text: bom + out.join(''), removed };
}

export interface RewriteHooks {
  /** Called after the new content is written to the temp file, before the final check and rename. */
  beforeRename?: () => Promise<void>;
}

export type RewriteResult = { removed: string[]; eol: string; mode: number } | { conflict: true } | { unwritable: string };

/**
 * Errors that say the file cannot be replaced from here at all: a file bind-mounted on its own
 * (`docker run -v ./token.json:…`) cannot be renamed over (EBUSY, or EXDEV), a read-only mount or
 * folder refuses the temp file (EROFS, EACCES, EPERM).
 */
const UNWRITABLE = new Set(['EBUSY', 'EXDEV', 'EROFS', 'EACCES', 'EPERM']);

const ATTEMPTS = 3;

/**
 * Removes entries from a token file atomically: the new content goes to a temp file beside it
 * (same permissions and, when allowed, owner) that replaces it by rename. The file is read again
 * just before the rename; if the user changed it meanwhile, the work is redone on their version
 * (up to three times, then `conflict`: try again next run). A missing file removes nothing. A
 * symbolic link stays one: the file it points to is replaced. A file that cannot be replaced from
 * here is left as it is (`unwritable`, with the error code).
 */
export async function rewriteTokenFile(
  path: string,
  dead: ReadonlySet<string>,
  split: LineSplit,
  hooks: RewriteHooks = {},
): Promise<RewriteResult> {
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const before = await readIfExists(path);
    if (before === undefined) return { removed: [], eol: '\n', mode: 0o600 };
    const { text, removed } = removeFromTokenFile(before, dead, split);
    const eol = eolOf(before);
    const target = await realpath(path);
    const st = await stat(target);
    const mode = st.mode & 0o7777;
    if (removed.length === 0) return { removed, eol, mode };
    const temp = join(dirname(target), `.${basename(target)}.tschk-${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      const fh = await open(temp, 'wx', mode);
      try {
        await fh.writeFile(text, 'utf8');
        await fh.chmod(mode);
        await fh.chown(st.uid, st.gid).catch(() => {}); // only root may; then the owner is ours anyway
        await fh.sync();
      } finally {
        await fh.close();
      }
      await hooks.beforeRename?.();
      if ((await readIfExists(path)) !== before) {
        await rm(temp, { force: true });
        continue;
      }
      await rename(temp, target);
      return { removed, eol, mode };
    } catch (err) {
      await rm(temp, { force: true });
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== undefined && UNWRITABLE.has(code)) return { unwritable: code };
      throw err;
    }
  }
  return { conflict: true };
}

/**
 * Appends entries, one per line, after a newline if the file lacks a final one. Lines end with
 * `eol`, by default the file's own; a new file gets `mode`. Only to a regular file: a FIFO in its
 * place is refused rather than waited on.
 */
export async function appendLines(path: string, entries: readonly string[], mode: number, eol?: string): Promise<void> {
  if (entries.length === 0) return;
  const existing = await readIfExists(path);
  eol ??= eolOf(existing ?? '');
  const separator = existing !== undefined && existing !== '' && !/[\r\n]$/.test(existing) ? eol : '';
  const fh = await open(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NONBLOCK, mode);
  try {
    if (!(await fh.stat()).isFile())
      throw new TokenFileUnreadable(`${basename(path)} is not a regular file: tschk does not write to it`, 'not_regular');
    await fh.writeFile(separator + entries.map((e) => e + eol).join(''), 'utf8');
  } finally {
    await fh.close();
  }
}

function eolOf(text: string): string {
  return /\r\n/.test(text) ? '\r\n' : '\n';
}

/**
 * A file's text, or undefined when it does not exist. A FIFO, a device or a read that does not
 * answer (a hung mount) is a `TokenFileUnreadable` error, never a wait.
 */
export function readIfExists(path: string): Promise<string | undefined> {
  return readTokenFileText(path);
}

const locks = new Map<string, Promise<unknown>>();

/** Serialises work on one file inside this process: a sync never reads a file half-way through our rewrite. */
export function withFileLock<T>(path: string, fn: () => Promise<T>): Promise<T> {
  const next = (locks.get(path) ?? Promise.resolve()).then(fn);
  const settled = next.catch(() => {});
  locks.set(path, settled);
  void settled.then(() => {
    if (locks.get(path) === settled) locks.delete(path);
  });
  return next;
}
