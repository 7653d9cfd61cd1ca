import { createHash } from 'node:crypto';

/** First 12 hex chars of the SHA-256: stable, safe to log and to query by. */
export function fingerprint(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex').slice(0, 12);
}

/** An `account-password` line (DeepSeek platform accounts): a phone number or an e-mail, then `-`. */
const ACCOUNT_LINE = /^(\+?\d{6,}|[^\s@-]+@[^\s-]+)-./;

/**
 * `abcd…wxyz`; short secrets show less so that a mask never reveals most of a token. An account
 * line shows only its masked account: the end of the line is the password.
 */
export function mask(secret: string): string {
  const account = ACCOUNT_LINE.exec(secret)?.[1];
  if (account !== undefined) return `${maskPart(account)}-***`;
  return maskPart(secret);
}

function maskPart(secret: string): string {
  if (secret.length <= 8) {
    const shown = Math.min(2, Math.floor(secret.length / 4));
    return '…' + (shown > 0 ? secret.slice(-shown) : '');
  }
  if (secret.length <= 16) return `${secret.slice(0, 2)}…${secret.slice(-2)}`;
  return `${secret.slice(0, 4)}…${secret.slice(-4)}`;
}

/** Free text (an upstream's message, an error) with every occurrence of the secret masked, at most 500 chars. */
export function scrubSecret(text: string, secret: string): string {
  return (secret.length >= 4 ? text.split(secret).join(mask(secret)) : text).slice(0, 500);
}

/** How a token is shown anywhere outside the database. */
export function describeSecret(secret: string): { mask: string; fingerprint: string } {
  return { mask: mask(secret), fingerprint: fingerprint(secret) };
}

/**
 * Tokens inside one stored entry (a file line, a One-API key, an imported line).
 * A free-api picks one of `T1,T2,T3` at random per request, so each is checked on its own;
 * `@` (step) and `-` (metaso) belong to one token and are not separators.
 */
export function splitTokens(entry: string): string[] {
  return entry
    .split(/\r?\n/)
    .flatMap((line) => line.split(','))
    .map((t) => t.replace(/^\uFEFF/, '').trim())
    .filter((t) => t.length > 0);
}

/** Lines of a token file or an import: tolerates a BOM, CRLF, blank lines and surrounding spaces. */
export function parseTokenLines(text: string): string[] {
  return text
    .replace(/^\uFEFF/, '')
    .split(/\r?\n|\r/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
}

/**
 * The longest line tschk takes a token from, in characters. Real tokens are far shorter (a JWT
 * is about 1 KB); a longer line is a pasted document or binary data, not a token.
 */
export const MAX_TOKEN_LENGTH = 4096;

/** Why a line cannot hold tokens: such lines are skipped, never sent upstream. */
export type LineProblem = 'too_long' | 'control_character' | 'not_utf8';

// C0 controls (tab included: no token holds one, and a header value must not), DEL, C1 controls.
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** Pure: what is wrong with a trimmed line of a token file or an import, if anything. */
export function tokenLineProblem(line: string): LineProblem | undefined {
  if (line.length > MAX_TOKEN_LENGTH && [...line].length > MAX_TOKEN_LENGTH) return 'too_long';
  if (CONTROL.test(line)) return 'control_character';
  // What a decoder puts where the bytes were not UTF-8: a file in another encoding, or binary.
  if (line.includes('\uFFFD')) return 'not_utf8';
  return undefined;
}

const PROBLEM_WORDS: Record<LineProblem, string> = {
  too_long: `is longer than ${MAX_TOKEN_LENGTH} characters`,
  control_character: 'holds a control character (a NUL, a tab, an escape sequence)',
  not_utf8: 'holds bytes that are not UTF-8',
};

/** What a user is told about a line that cannot be a token. */
export function describeLineProblem(problem: LineProblem): string {
  return PROBLEM_WORDS[problem];
}

/** Pure: the entries of an import that cannot be tokens, by index; an import holding one is refused whole. */
export function unusableEntries(entries: readonly string[]): Array<{ index: number; problem: LineProblem }> {
  const out: Array<{ index: number; problem: LineProblem }> = [];
  entries.forEach((entry, index) => {
    const problem = tokenLineProblem(entry.trim());
    if (problem) out.push({ index, problem });
  });
  return out;
}

/** An import refused because an entry cannot be a token; nothing of it was stored. */
export class UnusableTokensError extends Error {
  override name = 'UnusableTokensError';
  constructor(readonly found: ReadonlyArray<{ index: number; problem: LineProblem }>) {
    const first = found[0]!;
    super(
      `entry ${first.index + 1} ${describeLineProblem(first.problem)}${found.length > 1 ? ` (and ${found.length - 1} more entries cannot be tokens)` : ''}: nothing imported`,
    );
  }
}
