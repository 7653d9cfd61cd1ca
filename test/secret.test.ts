import { describe, expect, it } from 'vitest';
import { fingerprint, mask, parseTokenLines, splitTokens } from '../src/secret.js';

describe('secrets as shown', () => {
  it('masks to the first and last four characters', () => {
    expect(mask('eyJhbGciOiJIUzUxMiJ9.payload.signature')).toBe('eyJh…ture');
    expect(mask('0123456789abcdef0')).toBe('0123…def0');
  });
  it('reveals little of short tokens', () => {
    expect(mask('abcdefghij')).toBe('ab…ij');
    expect(mask('abcdefgh')).toBe('…gh');
    expect(mask('abc')).toBe('…');
  });
  it('never shows any of the password of an account line', () => {
    expect(mask('13800138000-hunter2pass')).toBe('13…00-***');
    expect(mask('someone@example.com-p4ss-with-dash')).toBe('some….com-***');
    // a metaso uid-sid or a JWT is not an account line
    expect(mask('6543ab21cd-0f9e8d7c6b5a')).toBe('6543…6b5a');
  });
  it('fingerprints as 12 hex chars of SHA-256', () => {
    expect(fingerprint('token')).toBe('3c469e9d6c58');
    expect(fingerprint('token')).toMatch(/^[0-9a-f]{12}$/);
  });
});

describe('token entries', () => {
  it('splits T1,T2 and keeps step and metaso tokens whole', () => {
    expect(splitTokens(' T1 , T2,,T3 ')).toEqual(['T1', 'T2', 'T3']);
    expect(splitTokens('device123@Oasis-Token-abc')).toEqual(['device123@Oasis-Token-abc']);
    expect(splitTokens('uid-sid')).toEqual(['uid-sid']);
  });
  it('reads lines with a BOM, CRLF, blank lines and trailing spaces', () => {
    expect(parseTokenLines('\uFEFFaaa \r\n\r\n  bbb\r\nccc,ddd\n\n')).toEqual(['aaa', 'bbb', 'ccc,ddd']);
  });
});
