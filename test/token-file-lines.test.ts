import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAX_TOKEN_LENGTH, tokenLineProblem } from '../src/secret.js';
import { closeTokenFile, LineReader, openTokenFile } from '../src/sources/file-read.js';
import { judgeTokenFile, lineEntries, parseTokenFile, scanTokenFile, type FileScan } from '../src/sources/token-file.js';

describe('tokenLineProblem', () => {
  it.each([
    ['a free-api token', 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl', undefined],
    ['an account line with a non-ASCII password', '13800000000-密码,word', undefined],
    ['exactly the maximum', 'x'.repeat(MAX_TOKEN_LENGTH), undefined],
    ['the maximum in characters that take two UTF-16 units', '😀'.repeat(MAX_TOKEN_LENGTH), undefined],
    ['one past the maximum', 'x'.repeat(MAX_TOKEN_LENGTH + 1), 'too_long'],
    ['a NUL', 'tok\u0000en', 'control_character'],
    ['a tab inside', 'tok\ten', 'control_character'],
    ['an escape sequence', '\u001b[31mtoken', 'control_character'],
    ['DEL', 'tok\u007fen', 'control_character'],
    ['a C1 control', 'tok\u0085en', 'control_character'],
    ['bytes that were not UTF-8', 'tok\uFFFDen', 'not_utf8'],
  ])('%s', (_name, line, want) => {
    expect(tokenLineProblem(line)).toBe(want);
  });
});

describe('judgeTokenFile', () => {
  const scan = (s: Partial<FileScan>): FileScan => ({
    lines: 10,
    tokens: 10,
    bad: 0,
    badLines: [],
    problems: {},
    binary: false,
    digest: 'd',
    ...s,
  });

  it('uses a clean file without a word', () => {
    expect(judgeTokenFile(scan({}))).toEqual({ use: true });
  });

  it('skips a few bad lines, naming the first ones and how many more', () => {
    expect(judgeTokenFile(scan({ lines: 100, bad: 7, badLines: [3, 9, 10, 41, 42] }))).toEqual({
      use: true,
      warning: `token file has 7 lines that cannot be tokens (control characters, not UTF-8, or longer than ${MAX_TOKEN_LENGTH} characters), skipped: lines 3, 9, 10, 41, 42 and 2 more`,
    });
    expect(judgeTokenFile(scan({ lines: 2, bad: 1, badLines: [2] }))).toMatchObject({
      use: true,
      warning: expect.stringContaining('1 line that cannot be tokens'),
    });
  });

  it('leaves alone a file that is mostly bad lines, or binary', () => {
    expect(judgeTokenFile(scan({ lines: 5, bad: 3, badLines: [1, 2, 5] }))).toEqual({
      use: false,
      error:
        'token file does not look like a token list: 3 of its 5 lines cannot be tokens (lines 1, 2, 5): left alone, its tokens keep their last known list',
    });
    expect(judgeTokenFile(scan({ lines: 1, bad: 1, badLines: [1] }))).toMatchObject({ use: false });
    expect(judgeTokenFile(scan({ binary: true }))).toMatchObject({ use: false, error: expect.stringContaining('binary data') });
  });
});

describe('reading a token file in chunks', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tschk-lines-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  async function streamed(content: string | Buffer, split: 'commas' | 'whole-line' = 'commas') {
    const path = join(dir, 'token.json');
    writeFileSync(path, content);
    const file = (await openTokenFile(path))!;
    try {
      const reader = new LineReader(file);
      const entries: Array<{ secret: string; line: number }> = [];
      for await (const lines of reader.lines()) {
        for (const l of lines)
          for (const secret of lineEntries(l.text, split, l.overlong).secrets) entries.push({ secret, line: l.number });
      }
      const scan = await scanTokenFile(new LineReader(file), split);
      return { entries, scan, digest: reader.digest };
    } finally {
      closeTokenFile(file);
    }
  }

  const CHUNK = 64 * 1024;

  it('finds the same entries as the whole-text parser, whatever falls on a chunk boundary', async () => {
    const pad = (n: number) => 'p'.repeat(n);
    const texts = [
      // CRLF split across the boundary: one line break, not two
      `${pad(CHUNK - 1)}\r\nT2\r\nT3`,
      // a lone CR at the boundary, then a line
      `${pad(CHUNK - 1)}\rT2\n`,
      // a BOM, and a three-byte character split by the boundary
      `\uFEFF${pad(CHUNK - 4)}€T1,T2\n\nT3 \n`,
      // many lines over several chunks, blank ones counted
      Array.from({ length: 30_000 }, (_, i) => (i % 7 === 0 ? '' : `tok-${i},x${i}`)).join('\r\n'),
    ];
    for (const text of texts) {
      const { entries } = await streamed(text);
      expect(entries).toEqual(parseTokenFile(text, 'commas'));
    }
  });

  it('never keeps a huge line in memory: it counts as too long, and the next lines keep their numbers', async () => {
    const text = `T1\n${'A'.repeat(1024 * 1024)}\nT3\n${'B'.repeat(MAX_TOKEN_LENGTH + 1)}\r\nT5\n`;
    const { entries, scan } = await streamed(text);
    expect(entries).toEqual([
      { secret: 'T1', line: 1 },
      { secret: 'T3', line: 3 },
      { secret: 'T5', line: 5 },
    ]);
    expect(scan).toMatchObject({ lines: 5, tokens: 3, bad: 2, badLines: [2, 4], problems: { too_long: 2 }, binary: false });
  });

  it('counts NUL and control-character lines as bad, and calls a file with a NUL near its start binary', async () => {
    const late = Buffer.concat([
      Buffer.from(`${'T'.repeat(9000)}\n`),
      Buffer.from('ok-1\nbad\u0000line\nesc\u001b[0m\n\xff\xfe\n', 'latin1'),
    ]);
    const { scan } = await streamed(late, 'whole-line');
    expect(scan).toMatchObject({
      binary: false,
      bad: 4,
      badLines: [1, 3, 4, 5],
      problems: { too_long: 1, control_character: 2, not_utf8: 1 },
    });

    const utf16 = Buffer.from('\uFEFFtok-one\r\ntok-two\r\n', 'utf16le');
    expect((await streamed(utf16)).scan).toMatchObject({ binary: true });
  });

  it('tells two reads of different content apart by their digest', async () => {
    const a = await streamed('T1\nT2\n');
    const b = await streamed('T1\nT3\n');
    const a2 = await streamed('T1\nT2\n');
    expect(a.digest).toBe(a2.digest);
    expect(a.digest).not.toBe(b.digest);
    expect(a.scan.digest).toBe(a.digest);
  });
});
