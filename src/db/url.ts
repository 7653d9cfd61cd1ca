import type { DialectName } from './dialect.js';

export interface DatabaseTarget {
  dialect: DialectName;
  /** SQLite: a file path or `:memory:`; others: a connection URL their driver accepts. */
  location: string;
}

export const ACCEPTED_DATABASE_URLS = 'sqlite:PATH, sqlite::memory:, postgres://…, postgresql://…, mysql://…, mariadb://…';

/** Returns null when the URL names no supported database. */
export function parseDatabaseUrl(url: string): DatabaseTarget | null {
  const trimmed = url.trim();
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(trimmed)?.[1]?.toLowerCase();
  switch (scheme) {
    case 'sqlite': {
      let path = trimmed.slice('sqlite:'.length);
      if (path.startsWith('//')) path = path.slice(2); // sqlite:///abs/path and sqlite://./rel
      if (path === '') return null;
      return { dialect: 'sqlite', location: path };
    }
    case 'postgres':
    case 'postgresql':
      return validUrl(trimmed) ? { dialect: 'postgres', location: trimmed } : null;
    case 'mysql':
    case 'mariadb': {
      const asMysql = trimmed.replace(/^mariadb:/i, 'mysql:');
      return validUrl(asMysql) ? { dialect: 'mysql', location: asMysql } : null;
    }
    default:
      return null;
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
