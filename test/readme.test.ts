import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LEGACY_SERVICES, legacyVariable } from '../src/config.js';

const root = join(import.meta.dirname, '..');
const read = (file: string) => readFileSync(join(root, file), 'utf8');

/** What an environment variable of tschk looks like: its own prefix, LOG_LEVEL, or the original's names. */
const VARIABLE =
  /^(?:TSCHK_[A-Z0-9_]+|LOG_LEVEL|UserAuthorization|ConnectionStrings__[A-Za-z0-9_]+|TokenStatuCheckUrls__[A-Za-z0-9_{}, ]+)$/;

/** `A{x,y}B` → `AxB`, `AyB` (the README writes the seven original URL variables as one row). */
function expandBraces(name: string): string[] {
  const m = /^([^{]*)\{([^}]*)\}(.*)$/.exec(name);
  if (!m) return [name];
  return m[2]!.split(',').flatMap((part) => expandBraces(`${m[1]}${part.trim()}${m[3]}`));
}

/**
 * The variables a README documents: every code span in the first cell of a table row that names
 * one. Only first cells count — a variable mentioned in prose or in another table's description
 * is not documented by that — and any table does, so that a section being renamed or split
 * while others edit the README does not silently empty the set.
 */
export function documentedVariables(markdown: string): Set<string> {
  const names = new Set<string>();
  for (const line of markdown.split(/\r?\n/)) {
    const row = /^\s*\|([^|]*)\|/.exec(line);
    if (!row) continue;
    for (const span of row[1]!.matchAll(/`([^`]+)`/g)) {
      const text = span[1]!.trim();
      if (VARIABLE.test(text)) for (const name of expandBraces(text)) names.add(name);
    }
  }
  return names;
}

/** Every variable name the source reads: string literals of config.ts, `process.env.X` anywhere, the legacy URL variables. */
function variablesReadBySource(): Set<string> {
  const names = new Set<string>(LEGACY_SERVICES.map(({ suffix }) => legacyVariable(suffix)));
  const literal = /(['"`])([A-Za-z][A-Za-z0-9_]*)\1/g;
  for (const m of read('src/config.ts').matchAll(literal)) if (VARIABLE.test(m[2]!)) names.add(m[2]!);
  const walk = (dir: string): string[] =>
    readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
    );
  for (const file of walk('src')) {
    for (const m of read(file).matchAll(/process\.env(?:\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*['"]([A-Za-z_][A-Za-z0-9_]*)['"]\s*\])/g)) {
      names.add((m[1] ?? m[2])!);
    }
  }
  return names;
}

const missingFrom = (documented: Set<string>, wanted: Iterable<string>) => [...wanted].filter((v) => !documented.has(v)).sort();

describe('README.md and README.zh-CN.md', () => {
  const english = documentedVariables(read('README.md'));
  const chinese = documentedVariables(read('README.zh-CN.md'));

  it('the extraction reads the configuration tables (a guard against a parser that finds nothing)', () => {
    expect(english.size).toBeGreaterThan(30);
    for (const name of [
      'TSCHK_DATABASE_URL',
      'UserAuthorization',
      'ConnectionStrings__TS_Database',
      'TokenStatuCheckUrls__SparkTokenCheckUrl',
      'LOG_LEVEL',
    ]) {
      expect(english).toContain(name);
    }
  });

  it('document every variable that src/ reads in README.md', () => {
    expect(missingFrom(english, variablesReadBySource())).toEqual([]);
  });

  it('list the same environment variables in both languages', () => {
    expect({ missingInChinese: missingFrom(chinese, english), missingInEnglish: missingFrom(english, chinese) }).toEqual({
      missingInChinese: [],
      missingInEnglish: [],
    });
  });

  it('link to each other', () => {
    expect(read('README.md').split('\n').slice(0, 5).join('\n')).toContain('](README.zh-CN.md)');
    expect(read('README.zh-CN.md').split('\n').slice(0, 5).join('\n')).toContain('](README.md)');
  });
});

describe('documentedVariables', () => {
  it('reads first cells only, expands the brace form, and ignores prose', () => {
    const md = [
      '| variable | default | meaning |',
      '|---|---|---|',
      '| `TSCHK_A` / `UserAuthorization` | `1` | like `TSCHK_NOT_A_ROW` |',
      '| `TokenStatuCheckUrls__{Qwen, Glm}TokenCheckUrl` | — | … |',
      'Set `TSCHK_IN_PROSE` to …',
    ].join('\n');
    expect([...documentedVariables(md)].sort()).toEqual([
      'TSCHK_A',
      'TokenStatuCheckUrls__GlmTokenCheckUrl',
      'TokenStatuCheckUrls__QwenTokenCheckUrl',
      'UserAuthorization',
    ]);
  });
});
