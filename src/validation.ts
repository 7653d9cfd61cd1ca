import type { TokenState } from './db/schema.js';

/**
 * What a client may send, the same on every dialect. Each limit is the narrowest place the value
 * goes to: a value one database would store and another refuse is refused everywhere, with a
 * message naming the field and the limit instead of the database's error.
 */
export const LIMITS = {
  /** Ids and cursors: `serial`/`integer` columns are int4 on PostgreSQL. */
  maxId: 2_147_483_647,
  /** Characters per token: `tokens.secret` is TEXT on MySQL, 64 KiB; 4096 four-byte characters fit. */
  tokenChars: 4096,
  /** `tokens.label` is varchar(255). */
  labelChars: 255,
  /** Provider and pool names are varchar(64). */
  nameChars: 64,
  /** `providers.check_url` is varchar(1024). */
  urlChars: 1024,
  /** A provider's concurrency, as TSCHK_PROVIDER_CONCURRENCY allows. */
  concurrency: 10_000,
} as const;

/** Provider and pool names: they go into URLs, file names and metric labels as they are. */
export const NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/i;
export const NAME_RULE = `letters, digits, - and _, at most ${LIMITS.nameChars}`;
/** A check URL or a base URL: http(s), no spaces. */
export const URL_PATTERN = /^https?:\/\/\S+$/i;
export const URL_RULE = 'an http(s) URL';
/** `tokens.state`; the order is the one lists and errors show. */
export const TOKEN_STATES = ['active', 'suspect', 'invalid', 'disabled'] as const satisfies readonly TokenState[];
/** What a canary token is expected to be. */
export const EXPECTATIONS = ['live', 'dead'] as const;
export const EXPECT_PATTERN = /^(live|dead)$/;
export const EXPECT_RULE = 'live or dead';

export const isTokenState = (s: string): s is TokenState => (TOKEN_STATES as readonly string[]).includes(s);
export const isExpectation = (s: string): s is (typeof EXPECTATIONS)[number] => (EXPECTATIONS as readonly string[]).includes(s);

/** PostgreSQL refuses U+0000 in text; the others would store it. */
export const hasNul = (s: string): boolean => s.includes('\u0000');

/** Characters as the databases count them in varchar(n): code points, not UTF-16 units. */
export function charCount(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** A value quoted for an error message: cut short, so that an answer never echoes a huge input. */
export function quote(value: string, max = 80): string {
  return `'${charCount(value) > max ? `${[...value].slice(0, max).join('')}…` : value}'`;
}

/** Why the text is refused (NUL, or longer than `max` characters), or undefined when it is fine. */
export function textProblem(field: string, value: string, max?: number): string | undefined {
  if (hasNul(value)) return `${field} must not contain a NUL character (\\u0000)`;
  if (max !== undefined) {
    const n = charCount(value);
    if (n > max) return `${field} must be at most ${max} characters; got ${n}`;
  }
  return undefined;
}

/** A decimal id from `min` to LIMITS.maxId, or undefined. */
export function parseId(raw: string, min = 1): number | undefined {
  if (!/^\d{1,10}$/.test(raw)) return undefined;
  const n = Number(raw);
  return n >= min && n <= LIMITS.maxId ? n : undefined;
}

interface Step {
  v: unknown;
  key: string | number | undefined;
  parent: Step | undefined;
}

/** `tokens[2]`, `a.b`: the way to a value, built only for the one reported, cut short. */
function pathOf(step: Step): string {
  let path = '';
  for (let s: Step | undefined = step; s?.key !== undefined; s = s.parent) {
    path = (typeof s.key === 'number' ? `[${s.key}]` : s.parent?.key === undefined ? s.key : `.${s.key}`) + path;
    if (path.length > 200) path = `…${path.slice(-120)}`;
  }
  return path.length > 120 ? `…${path.slice(-120)}` : path;
}

/**
 * Where in a parsed JSON value the first NUL character is (`label`, `tokens[2]`, `a.b`), or
 * undefined. Iterative, with each path built only when reported: a body nested 50,000 deep must
 * neither overflow the stack nor build 50,000 long paths.
 */
export function nulPath(value: unknown): string | undefined {
  const stack: Step[] = [{ v: value, key: undefined, parent: undefined }];
  while (stack.length > 0) {
    const step = stack.pop()!;
    const { v } = step;
    if (typeof v === 'string') {
      if (hasNul(v)) return pathOf(step) || 'the body';
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ v: v[i], key: i, parent: step });
    } else if (typeof v === 'object' && v !== null) {
      const keys = Object.keys(v);
      if (keys.some(hasNul)) return step.key === undefined ? 'a member name' : `a member name in ${pathOf(step)}`;
      for (let i = keys.length - 1; i >= 0; i--) stack.push({ v: (v as Record<string, unknown>)[keys[i]!], key: keys[i]!, parent: step });
    }
  }
  return undefined;
}
