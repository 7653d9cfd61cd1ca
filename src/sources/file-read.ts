import { createHash } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { access, open, stat, type FileHandle } from 'node:fs/promises';
import { basename } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { MAX_TOKEN_LENGTH } from '../secret.js';

/**
 * Reading a token file without ever blocking the daemon. Node runs file calls on libuv's small
 * thread pool (4 threads, shared with every other file call of the process), and a call that
 * never returns keeps the process from exiting, even by `process.exit`. So only regular files
 * are read, opened with O_NONBLOCK (a FIFO swapped in after the check opens at once instead of
 * waiting for a writer), and every call gets `timeoutMs`: one that does not answer (a hung
 * network mount) is abandoned and the file is not read again until it answers.
 */
export const fileReadLimits = {
  timeoutMs: 5_000,
  /** Beyond this many calls without an answer no token file is read at all: the pool keeps threads for the rest. */
  maxUnanswered: 2,
};

export type UnreadableReason = 'not_regular' | 'timeout' | 'unanswered';

/** Why a token file was not read. Its pool keeps its last known list. */
export class TokenFileUnreadable extends Error {
  override name = 'TokenFileUnreadable';
  constructor(
    message: string,
    readonly reason: UnreadableReason,
  ) {
    super(message);
  }
}

/** Calls that timed out and have not answered since, by file: when each started. */
const unanswered = new Map<string, number>();

/** How many abandoned calls have still not answered. */
export function unansweredReads(): number {
  return unanswered.size;
}

function refuseWhileUnanswered(path: string): void {
  const since = unanswered.get(path);
  if (since !== undefined) {
    const s = Math.round((Date.now() - since) / 1000);
    throw new TokenFileUnreadable(
      `${basename(path)} has not answered a read started ${s} s ago (a hung network mount?): not read again until it does`,
      'unanswered',
    );
  }
  if (unanswered.size >= fileReadLimits.maxUnanswered) {
    throw new TokenFileUnreadable(
      `${unanswered.size} token files have not answered a read (a hung network mount?): no token file is read until they do`,
      'unanswered',
    );
  }
}

/**
 * `op`, or a `timeout` error once `timeoutMs` passed, or the stop signal's reason. An abandoned
 * call keeps `path` refused until it settles; `onLate` disposes of what it brings (a file handle).
 */
async function bounded<T>(path: string, op: Promise<T>, signal: AbortSignal | undefined, onLate?: (value: T) => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const started = Date.now();
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(
        new TokenFileUnreadable(
          `${basename(path)} did not answer a read within ${fileReadLimits.timeoutMs / 1000} s (a hung network mount?): the read is abandoned`,
          'timeout',
        ),
      );
    }, fileReadLimits.timeoutMs);
    if (signal) {
      onAbort = () => reject(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)));
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    }
  });
  try {
    return await Promise.race([op, timeout]);
  } catch (err) {
    if (err instanceof TokenFileUnreadable || signal?.aborted) {
      unanswered.set(path, started);
      op.then(onLate, () => {}).finally(() => unanswered.delete(path));
    }
    throw err;
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  }
}

function kindOf(st: Stats): string {
  if (st.isFIFO()) return 'a named pipe (FIFO)';
  if (st.isDirectory()) return 'a directory';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  return 'not a regular file';
}

function notRegular(path: string, st: Stats): TokenFileUnreadable {
  return new TokenFileUnreadable(`${basename(path)} is ${kindOf(st)}, not a regular file: tschk does not read it`, 'not_regular');
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** Whether a folder exists, with the same bound as a read (`path` is the file it is asked for). */
export async function folderExists(folder: string, path: string, signal?: AbortSignal): Promise<boolean> {
  refuseWhileUnanswered(path);
  try {
    await bounded(path, access(folder), signal);
    return true;
  } catch (err) {
    if (err instanceof TokenFileUnreadable || signal?.aborted) throw err;
    return false;
  }
}

export interface OpenTokenFile {
  path: string;
  handle: FileHandle;
  signal: AbortSignal | undefined;
}

/** Opens a regular file (or a link to one) for reading; undefined when there is none. */
export async function openTokenFile(path: string, signal?: AbortSignal): Promise<OpenTokenFile | undefined> {
  refuseWhileUnanswered(path);
  let handle: FileHandle;
  try {
    const st = await bounded(path, stat(path), signal);
    if (!st.isFile()) throw notRegular(path, st);
    handle = await bounded(
      path,
      open(path, constants.O_RDONLY | constants.O_NONBLOCK),
      signal,
      (late) => void late.close().catch(() => {}),
    );
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
  try {
    const st = await bounded(path, handle.stat(), signal);
    if (!st.isFile()) throw notRegular(path, st);
    return { path, handle, signal };
  } catch (err) {
    // An abandoned call still holds the handle; close() waits for it.
    void handle.close().catch(() => {});
    throw err;
  }
}

export function closeTokenFile(file: OpenTokenFile | undefined): void {
  void file?.handle.close().catch(() => {});
}

/** A line of a token file: `text` untrimmed; `overlong` lines are far past MAX_TOKEN_LENGTH and their text is dropped. */
export interface FileLine {
  text: string;
  /** 1-based, blank lines counted: what a user sees in an editor. */
  number: number;
  overlong: boolean;
}

const CHUNK_BYTES = 64 * 1024;
/** A line is kept in memory up to this length; past it, it only counts as too long. */
const LINE_CAP = 4 * MAX_TOKEN_LENGTH;
const BREAK = /\r\n|\n|\r/g;
/** A NUL byte this early says binary data (or UTF-16 text), as git and grep decide it. */
const BINARY_SNIFF_BYTES = 8000;

/**
 * Reads a file from its start in chunks, handing over its lines chunk by chunk, so that memory
 * does not grow with the file. After the last chunk, `digest` (SHA-256 of the bytes) tells
 * whether two reads saw the same file; `binary` is known after the first chunk.
 */
export class LineReader {
  digest: string | undefined;
  binary = false;

  constructor(private readonly file: OpenTokenFile) {}

  async *lines(): AsyncGenerator<FileLine[]> {
    const { path, handle, signal } = this.file;
    const decoder = new StringDecoder('utf8');
    const hash = createHash('sha256');
    const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
    const split = new LineSplitter();
    let position = 0;
    let start = true;
    for (;;) {
      const { bytesRead } = await bounded(path, handle.read(buffer, 0, CHUNK_BYTES, position), signal);
      if (bytesRead === 0) break;
      position += bytesRead;
      const bytes = buffer.subarray(0, bytesRead);
      hash.update(bytes);
      if (position === bytesRead && bytes.subarray(0, BINARY_SNIFF_BYTES).includes(0)) this.binary = true;
      let text = decoder.write(bytes);
      if (start && text.length > 0) {
        text = text.replace(/^\uFEFF/, '');
        start = false;
      }
      yield split.push(text, false);
    }
    yield split.push(decoder.end(), true);
    this.digest = hash.digest('hex');
  }
}

/** Splits text that arrives in pieces into lines as `\r\n`, `\n` or `\r` end them; a `\r` at a piece's end waits for the next. */
class LineSplitter {
  private carry = '';
  private overlong = false;
  private number = 0;

  push(piece: string, last: boolean): FileLine[] {
    const text = this.carry + piece;
    const out: FileLine[] = [];
    let from = 0;
    BREAK.lastIndex = 0;
    for (let m = BREAK.exec(text); m !== null; m = BREAK.exec(text)) {
      if (!last && m[0] === '\r' && m.index === text.length - 1) break;
      this.emit(out, text.slice(from, m.index));
      from = m.index + m[0].length;
    }
    const rest = text.slice(from);
    if (last) {
      this.emit(out, rest);
    } else if (rest.length > LINE_CAP) {
      this.overlong = true;
      this.carry = rest.endsWith('\r') ? '\r' : '';
    } else {
      this.carry = rest;
    }
    return out;
  }

  private emit(out: FileLine[], text: string): void {
    const overlong = this.overlong || text.length > LINE_CAP;
    out.push({ text: overlong ? '' : text, number: ++this.number, overlong });
    this.carry = '';
    this.overlong = false;
  }
}

/** The whole text of a regular file, or undefined when there is none; bounded like every read. */
export async function readTokenFileText(path: string, signal?: AbortSignal): Promise<string | undefined> {
  const file = await openTokenFile(path, signal);
  if (!file) return undefined;
  try {
    const chunks: Buffer[] = [];
    for (let position = 0; ;) {
      const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
      const { bytesRead } = await bounded(path, file.handle.read(buffer, 0, CHUNK_BYTES, position), signal);
      if (bytesRead === 0) break;
      chunks.push(buffer.subarray(0, bytesRead));
      position += bytesRead;
    }
    return Buffer.concat(chunks).toString('utf8');
  } finally {
    closeTokenFile(file);
  }
}
