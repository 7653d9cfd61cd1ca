import type { DaemonOptions } from '../../src/daemon.js';
import { testDaemon } from './daemon.js';

/** The shared secret the served test daemons are configured with. */
export const API_SECRET = 'api-secret-Zq81xK3vP0';

export interface Answer {
  status: number;
  headers: Headers;
  text: string;
  json(): any;
}

export interface CallOptions {
  /** The bearer to send; the default is API_SECRET, null sends no Authorization header. */
  auth?: string | null;
  body?: unknown;
  headers?: Record<string, string>;
}

/** A started daemon (HTTP on a free loopback port) and a client that keeps every answer it got. */
export async function servedDaemon(databaseUrl: string, env: Record<string, string> = {}, opts: Omit<DaemonOptions, 'logger'> = {}) {
  const t = await testDaemon(databaseUrl, { UserAuthorization: API_SECRET, ...env }, opts);
  await t.daemon.start();
  const base = t.daemon.httpAddress!.url;
  const answers: Answer[] = [];
  const call = async (method: string, path: string, opts: CallOptions = {}): Promise<Answer> => {
    const auth = opts.auth === undefined ? API_SECRET : opts.auth;
    const headers: Record<string, string> = { ...(auth === null ? {} : { authorization: `Bearer ${auth}` }), ...opts.headers };
    let body: string | undefined;
    if (opts.body !== undefined) {
      body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
      headers['content-type'] ??= 'application/json';
    }
    const res = await fetch(base + path, { method, headers, body });
    const text = await res.text();
    const answer = { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) };
    answers.push(answer);
    return answer;
  };
  return { ...t, base, call, answers };
}

export type Served = Awaited<ReturnType<typeof servedDaemon>>;
