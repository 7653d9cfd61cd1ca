import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { HttpError } from './router.js';

/** The variables that set the shared secret, as the 503 answer and the start-up warning name them. */
export const API_TOKEN_VARIABLES = 'UserAuthorization or TSCHK_API_TOKEN';

/** The credential of `Authorization: Bearer <credential>` (scheme case-insensitive), if any. */
export function bearerToken(headers: IncomingHttpHeaders): string | undefined {
  const m = /^\s*Bearer\s+(\S.*?)\s*$/i.exec(headers.authorization ?? '');
  return m?.[1];
}

/** Headers that carry a credential: twice in one request, which one counts would be a guess. */
const CREDENTIAL_HEADERS = ['Authorization', 'UserAuthorization'] as const;

/** Throws a 400 when a credential header comes more than once (Node would keep the first one silently). */
export function refuseRepeatedCredentials(headersDistinct: NodeJS.Dict<string[]>): void {
  for (const name of CREDENTIAL_HEADERS) {
    const n = headersDistinct[name.toLowerCase()]?.length ?? 0;
    if (n > 1) throw new HttpError(400, 'bad_request', `send one ${name} header; this request has ${n}`);
  }
}

/**
 * Throws the HttpError a protected route answers: 503 when no secret is configured, 401 when the
 * bearer is missing or wrong. The compare takes the same time whatever the caller sent.
 */
export function requireApiToken(headers: IncomingHttpHeaders, secret: string | undefined): void {
  if (secret === undefined) {
    throw new HttpError(503, 'auth_not_configured', `this route is disabled until an API secret is set: set ${API_TOKEN_VARIABLES}`);
  }
  const given = bearerToken(headers);
  if (given === undefined) {
    throw new HttpError(401, 'unauthorized', 'missing credentials: send Authorization: Bearer <UserAuthorization>', {
      'WWW-Authenticate': 'Bearer',
    });
  }
  if (!sameSecret(given, secret)) {
    throw new HttpError(401, 'unauthorized', 'wrong credentials: the bearer does not match UserAuthorization / TSCHK_API_TOKEN', {
      'WWW-Authenticate': 'Bearer error="invalid_token"',
    });
  }
}

/** Hashing first gives equal lengths, so timingSafeEqual neither throws nor leaks the length. */
export function sameSecret(a: string, b: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();
  return timingSafeEqual(digest(a), digest(b));
}
