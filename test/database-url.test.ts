import { describe, expect, it } from 'vitest';
import { redactDatabaseUrl } from '../src/db/url.js';

describe('redactDatabaseUrl', () => {
  it.each([
    ['postgres://bob:S3cretPw@db:5432/tschk', 'postgres://bob:***@db:5432/tschk', 'S3cretPw'],
    ['mysql://root:p%40ssW0rd@mysql:3306/one-api', 'mysql://root:***@mysql:3306/one-api', 'ssW0rd'],
    // The drivers take the last @ as the end of the credentials, so none of the password may stay.
    ['postgres://bob:p@ssW0rd@db/tschk', 'postgres://bob:***@db/tschk', 'ssW0rd'],
    ['mysql://:S3cretPw@db/tschk', 'mysql://:***@db/tschk', 'S3cretPw'],
    // Both drivers also read the password from the query string.
    ['postgres://bob@db/tschk?password=S3cretPw&sslmode=require', 'postgres://bob@db/tschk?password=***&sslmode=require', 'S3cretPw'],
  ])('%s → %s', (url, shown, secret) => {
    expect(redactDatabaseUrl(url)).toBe(shown);
    expect(redactDatabaseUrl(url)).not.toContain(secret);
  });

  it.each([
    'sqlite:./data/tschk.db',
    'sqlite:///var/lib/tschk.db',
    'sqlite::memory:',
    'postgres://db/tschk',
    'mysql://root@db:3306/one-api',
  ])('leaves %s without a password as it is', (url) => {
    expect(redactDatabaseUrl(url)).toBe(url);
  });
});
