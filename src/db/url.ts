import type { DialectName } from './dialect.js';

export interface DatabaseTarget {
  dialect: DialectName;
  /** SQLite: a file path or `:memory:`; others: a connection URL their driver accepts. */
  location: string;
}

export const ACCEPTED_DATABASE_URLS = 'sqlite:PATH, sqlite::memory:, postgres://…, postgresql://…, mysql://…, mariadb://…';

/** Returns null when the URL names no supported database. */
export function parseDatabaseUrl(url: string): DatabaseTarget | null {
  const read = readDatabaseUrl(url);
  return 'target' in read ? read.target : null;
}

/** The target, or why the URL is refused, in words that never repeat the URL (it may hold a password). */
export function readDatabaseUrl(url: string): { target: DatabaseTarget } | { problem: string } {
  const unsupported = { problem: `unsupported database URL; accepted: ${ACCEPTED_DATABASE_URLS}` };
  const trimmed = url.trim();
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(trimmed)?.[1]?.toLowerCase();
  switch (scheme) {
    case 'sqlite': {
      let path = trimmed.slice('sqlite:'.length);
      if (path.startsWith('//')) path = path.slice(2); // sqlite:///abs/path and sqlite://./rel
      if (path === '') return unsupported;
      return { target: { dialect: 'sqlite', location: path } };
    }
    case 'postgres':
    case 'postgresql':
    case 'mysql':
    case 'mariadb': {
      const location = trimmed.replace(/^mariadb:/i, 'mysql:');
      if (unencodedCredentials(location)) return { problem: UNENCODED_CREDENTIALS };
      if (!validUrl(location)) return unsupported;
      return { target: { dialect: scheme.startsWith('postgres') ? 'postgres' : 'mysql', location } };
    }
    default:
      return unsupported;
  }
}

const UNENCODED_CREDENTIALS =
  'the user name and password in the URL must be URL-encoded (/ as %2F, ? as %3F, # as %23, % as %25; ' +
  "JavaScript's encodeURIComponent does it), or use a password of hex characters such as `openssl rand -hex 24` gives";

/**
 * `postgres://u:ab/cd@db/x`: a `/`, `?` or `#` ends the host for every URL parser, so the rest of
 * the password becomes a path (and `u:12/ab@db/x` even reads as port 12 of host `u`). An `@` past
 * that point gives it away; so does a `%` the drivers cannot decode.
 */
function unencodedCredentials(url: string): boolean {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    const rest = url.slice(url.indexOf('://') + 3);
    const credentials = rest.slice(0, Math.max(0, rest.lastIndexOf('@')));
    return /[/?#]/.test(credentials) && /^[^/?#]*:/.test(credentials);
  }
  // A query may hold an `@` legitimately (`?options=…`), but not before its first `=`.
  if (u.pathname.includes('@') || u.hash.includes('@') || /^\?[^=&]*@/.test(u.search)) return true;
  try {
    decodeURIComponent(u.username);
    decodeURIComponent(u.password);
    return false;
  } catch {
    return true;
  }
}

function validUrl(u: string): boolean {
  try {
    return new URL(u).hostname !== '';
  } catch {
    return false;
  }
}

/**
 * The URL without its password, for logs. The drivers end the credentials at the last `@` before
 * the path and also read a password from the query string.
 */
export function redactDatabaseUrl(url: string): string {
  return url
    .replace(/^([a-z][a-z0-9+.-]*:\/\/[^/?#:@]*:)[^/?#]*@/i, '$1***@')
    .replace(/([?&](?:password|pwd|sslpassword)=)[^&#]*/gi, '$1***');
}
