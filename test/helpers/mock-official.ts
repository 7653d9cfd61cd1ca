// Loopback stand-ins for the official APIs of docs/official-apis.md: DeepSeek
// (API and platform), Moonshot, StepFun, OpenRouter and an OpenAI-compatible `/v1/models`, on one
// server, plus the ugly answers a client meets in front of them (HTML, 429, 5xx, resets, silence).
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { HTML_200, NGINX_502 } from './mock-free-api.js';

export type Reply =
  { status: number; json?: unknown; text?: string; contentType?: string; headers?: Record<string, string> } | 'reset' | 'timeout';

export const PATHS = {
  deepseek: '/user/balance',
  moonshot: '/v1/users/me/balance',
  stepfun: '/v1/accounts',
  openrouter: '/api/v1/key',
  models: '/v1/models',
  login: '/auth-api/v0/users/login',
  summary: '/api/v0/users/get_user_summary',
} as const;

/** Answers every provider can give. */
export const ugly = {
  html502: { status: 502, text: NGINX_502, contentType: 'text/html' },
  html200: { status: 200, text: HTML_200, contentType: 'text/html' },
  http503: { status: 503, text: 'Service Unavailable', contentType: 'text/plain' },
  rateLimited: (retryAfterS = 1) => ({
    status: 429,
    text: 'Too Many Requests',
    contentType: 'text/plain',
    headers: { 'Retry-After': String(retryAfterS) },
  }),
  empty200: { status: 200, text: '', contentType: 'text/html' },
} as const satisfies Record<string, Reply | ((s?: number) => Reply)>;

const ok = (json: unknown): Reply => ({ status: 200, json });

/** Contract-shaped success bodies, per provider. */
export const answers = {
  deepseekBalance: (isAvailable: boolean, infos: Array<{ currency: string; total: string }>) =>
    ok({
      is_available: isAvailable,
      balance_infos: infos.map((i) => ({
        currency: i.currency,
        total_balance: i.total,
        granted_balance: '0.00',
        topped_up_balance: i.total,
      })),
    }),
  moonshotBalance: (available: number) =>
    ok({ code: 0, data: { available_balance: available, voucher_balance: 0, cash_balance: available }, scode: '0x0', status: true }),
  stepfunAccount: (type: 'prepaid' | 'postpaid', balance: number) => ok({ object: 'account', type, balance, total_cash_balance: balance }),
  openrouterKey: (limitRemaining: number | null) =>
    ok({
      data: {
        label: 'sk-or-v1-abc…',
        limit: limitRemaining === null ? null : 10,
        limit_remaining: limitRemaining,
        usage: 1.5,
        is_free_tier: false,
      },
    }),
  models: () => ok({ object: 'list', data: [{ id: 'gpt-4o-mini', object: 'model' }] }),
  unauthorized: () => ({
    status: 401,
    json: { error: { message: 'Authentication Fails (no such user)', type: 'authentication_error', code: 'invalid_api_key' } },
  }),
};

export interface PlatformAccount {
  password: string;
  /** `total_available_token_estimation`, as the platform sends it (a string). */
  estimation: string;
  /** Replaces the login answer (captcha page, 429, …). */
  login?: Reply;
  /** Put the fields directly in `data`, as older answers did. */
  legacyShape?: boolean;
  /** Every session of the account is refused at once (40003), even a fresh one. */
  refuseSessions?: boolean;
}

export interface MockOfficial {
  baseUrl: string;
  calls: Array<{ method: string; path: string; authorization: string | undefined; body: string }>;
  /** The answer to `path` for requests bearing `key`; a key without one gets the provider's 401. */
  setKey(path: string, key: string, reply: Reply): void;
  addAccount(account: string, a: PlatformAccount): void;
  /** A platform user token for the account, as a browser would hold it. */
  issueSession(account: string): string;
  /** The platform forgets every session: the next summary answers 40003. */
  expireSessions(): void;
  logins(): Array<{ email: string; mobile: string; device_id: string; os: string; area_code: string }>;
  close(): Promise<void>;
}

export async function startMockOfficial(): Promise<MockOfficial> {
  const keys = new Map<string, Reply>();
  const accounts = new Map<string, PlatformAccount>();
  const sessions = new Map<string, string>();
  const calls: MockOfficial['calls'] = [];

  const send = (req: IncomingMessage, res: ServerResponse, r: Reply): void => {
    if (r === 'reset') {
      req.socket.resetAndDestroy();
      return;
    }
    if (r === 'timeout') return; // close() ends the socket
    const body = r.json !== undefined ? JSON.stringify(r.json) : (r.text ?? '');
    const type = r.json !== undefined ? 'application/json' : (r.contentType ?? 'text/plain');
    res.writeHead(r.status, { 'Content-Type': type, ...r.headers }).end(body);
  };

  const issueSession = (account: string) => {
    const session = `sess-${randomBytes(12).toString('hex')}`;
    sessions.set(session, account);
    return session;
  };

  const platform = (path: string, bearer: string | undefined, body: string): Reply => {
    if (path === PATHS.login) {
      let creds: Record<string, unknown> = {};
      try {
        creds = JSON.parse(body) as Record<string, unknown>;
      } catch {
        return { status: 400, json: { code: 400, msg: 'bad request', data: null } };
      }
      const account = [creds.email, creds.mobile].find((v): v is string => typeof v === 'string' && v !== '') ?? '';
      const a = accounts.get(account);
      if (a?.login) return a.login;
      if (!a || a.password !== creds.password) {
        return ok({ code: 0, msg: '', data: { biz_code: 2, biz_msg: 'PASSWORD_OR_USER_NAME_IS_WRONG', biz_data: null } });
      }
      return ok({
        code: 0,
        msg: '',
        data: { biz_code: 0, biz_msg: '', biz_data: { code: 0, msg: '', user: { token: issueSession(account), email: creds.email } } },
      });
    }
    const account = bearer === undefined ? undefined : sessions.get(bearer);
    const a = account === undefined ? undefined : accounts.get(account);
    if (!a || a.refuseSessions) return ok({ code: 40003, msg: 'Authorization Failed (invalid token)', data: null });
    const fields = {
      current_token: 0,
      monthly_usage: 1234,
      total_usage: 98765,
      normal_wallets: [{ currency: 'CNY', balance: '5.00', token_estimation: '2500000' }],
      bonus_wallets: [{ currency: 'CNY', balance: '10.00', token_estimation: '5000000' }],
      total_available_token_estimation: a.estimation,
      monthly_costs: [{ currency: 'CNY', amount: '0.12' }],
      monthly_token_usage: 4321,
    };
    return ok({ code: 0, msg: '', data: a.legacyShape ? fields : { biz_code: 0, biz_msg: '', biz_data: fields } });
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = (req.url ?? '/').split('?')[0]!;
      const body = Buffer.concat(chunks).toString('utf8');
      calls.push({ method: req.method ?? '', path, authorization: req.headers.authorization, body });
      const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      if (path === PATHS.login || path === PATHS.summary) return send(req, res, platform(path, bearer, body));
      if (!(Object.values(PATHS) as string[]).includes(path))
        return send(req, res, { status: 404, json: { error: { message: 'Not Found' } } });
      send(req, res, keys.get(`${path}\n${bearer}`) ?? answers.unauthorized());
    });
  });

  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    calls,
    setKey: (path, key, reply) => void keys.set(`${path}\n${key}`, reply),
    addAccount: (account, a) => void accounts.set(account, a),
    issueSession,
    expireSessions: () => sessions.clear(),
    logins: () => calls.filter((c) => c.path === PATHS.login).map((c) => JSON.parse(c.body) as ReturnType<MockOfficial['logins']>[number]),
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
