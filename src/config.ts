import { cronProblem } from './cron.js';
import { ConfigError } from './config-error.js';
import { readDatabaseUrl, type DatabaseTarget } from './db/url.js';

export { ConfigError };

export type PruneMode = 'off' | 'flag' | 'delete';
export type WebhookFormat = 'json' | 'wecom' | 'dingtalk' | 'feishu' | 'telegram';
export type OneApiFlavor = 'one-api' | 'new-api';

/** A free-api provider declared by the original's `TokenStatuCheckUrls__*` variables. */
export interface LegacyProvider {
  name: string;
  /** The original's folder: `LLM-Deep`, `LLM-Mita`, … */
  folder: string;
  variable: string;
  checkUrl: string;
}

export interface Config {
  database: DatabaseTarget & { url: string };
  cron: string;
  timezone: string | undefined;
  runOnStart: boolean;
  concurrency: number;
  providerConcurrency: number;
  timeoutMs: number;
  retries: number;
  retryBaseMs: number;
  minIntervalS: number;
  historyDays: number;
  /** How often a run writes the checks it holds (also when a batch fills). */
  historyFlushMs: number;
  /** Daily rollups and the event log are kept this long (TSCHK_ROLLUP_DAYS). */
  rollupDays: number;
  shutdownGraceMs: number;
  /** After the grace, how long closing may take before main's watchdog ends a stop that hangs. */
  shutdownWatchdogMs: number;
  /** How long a run lease lasts unless renewed; a holder that dies loses it after this. */
  runLeaseMs: number;
  /** When the daily history trim runs. */
  trimCron: string;
  logLevel: string;
  http: {
    host: string;
    port: number;
    apiToken: string | undefined;
    metricsPublic: boolean;
    /** Honour X-Forwarded-Proto and X-Forwarded-For: tschk sits behind a reverse proxy that sets them. */
    trustProxy: boolean;
    /** How long a web console sign-in lasts. */
    consoleSessionMinutes: number;
  };
  legacyProviders: LegacyProvider[];
  legacyDataDir: string | undefined;
  legacyRevealKeys: boolean;
  prune: { mode: PruneMode; after: number; maxRatio: number; exhausted: boolean; recover: boolean };
  oneApi:
    | {
        database: DatabaseTarget & { url: string };
        flavor: OneApiFlavor;
        /** provider name → channel ids; empty: match channels by base URL. */
        channels: Map<string, number[]>;
      }
    | undefined;
  deepseek: { apiUrl: string; platformUrl: string };
  lowBalance: Map<string, number>;
  notify: {
    uptimeKuma: Array<{ provider: string | undefined; pool: string | undefined; url: string }>;
    healthyRatio: number;
    webhookUrls: string[];
    webhookFormat: WebhookFormat;
    webhookSecret: string | undefined;
    telegramChatId: string | undefined;
  };
}

/** The original's service keys, their variables and folders. */
export const LEGACY_SERVICES = [
  { name: 'deep', suffix: 'Deep' },
  { name: 'qwen', suffix: 'Qwen' },
  { name: 'hailuo', suffix: 'Hailuo' },
  { name: 'mita', suffix: 'Mita' },
  { name: 'step', suffix: 'Step' },
  { name: 'glm', suffix: 'Glm' },
  { name: 'moonshot', suffix: 'Moonshot' },
  { name: 'spark', suffix: 'Spark' },
] as const;

export const legacyVariable = (suffix: string) => `TokenStatuCheckUrls__${suffix}TokenCheckUrl`;

type Env = Record<string, string | undefined>;

/** Reads the environment once; throws ConfigError naming the first bad variable. */
export function loadConfig(env: Env): Readonly<Config> {
  const get = (name: string): string | undefined => {
    const v = env[name]?.trim();
    return v === undefined || v === '' ? undefined : v;
  };
  const int = (name: string, def: number, min: number, max: number): number => {
    const raw = get(name);
    if (raw === undefined) return def;
    if (!/^-?\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
      throw new ConfigError(name, `expected a whole number from ${min} to ${max}, got '${raw}'`);
    }
    return Number(raw);
  };
  const ratio = (name: string, def: number): number => {
    const raw = get(name);
    if (raw === undefined) return def;
    const n = Number(raw);
    if (!/^\d*\.?\d+$/.test(raw) || n < 0 || n > 1) {
      throw new ConfigError(name, `expected a number from 0 to 1, got '${raw}'`);
    }
    return n;
  };
  const bool = (name: string, def: boolean): boolean => {
    const raw = get(name)?.toLowerCase();
    if (raw === undefined) return def;
    if (['true', '1', 'yes', 'on'].includes(raw)) return true;
    if (['false', '0', 'no', 'off'].includes(raw)) return false;
    throw new ConfigError(name, `expected true or false, got '${raw}'`);
  };
  const oneOf = <T extends string>(name: string, def: T, values: readonly T[]): T => {
    const raw = get(name);
    if (raw === undefined) return def;
    if (!values.includes(raw as T)) throw new ConfigError(name, `expected one of ${values.join(', ')}, got '${raw}'`);
    return raw as T;
  };
  const httpUrl = (name: string, raw: string): string => {
    let u: URL;
    try {
      u = new URL(raw);
    } catch {
      throw new ConfigError(name, `expected an http(s) URL, got ${urlHint(raw)}`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
      throw new ConfigError(name, `expected an http(s) URL, got ${urlHint(raw)}`);
    }
    return raw;
  };
  const database = (name: string, url: string) => {
    const read = readDatabaseUrl(url);
    if ('problem' in read) throw new ConfigError(name, read.problem);
    return { ...read.target, url };
  };

  const cronOf = (name: string, fallback: string): string => {
    const expr = get(name) ?? fallback;
    const problem = cronProblem(expr);
    if (problem) throw new ConfigError(name, `expected a cron expression such as '${fallback}', got '${expr}' (${problem})`);
    return expr;
  };
  const cronExpr = cronOf('TSCHK_CRON', '0 * * * *');
  const trimCron = cronOf('TSCHK_TRIM_CRON', '17 3 * * *');
  const timezone = get('TSCHK_TIMEZONE');
  if (timezone !== undefined && !validTimezone(timezone)) {
    throw new ConfigError('TSCHK_TIMEZONE', `expected an IANA time zone such as 'Asia/Shanghai', got '${timezone}'`);
  }

  const legacyProviders: LegacyProvider[] = [];
  for (const { name, suffix } of LEGACY_SERVICES) {
    const variable = legacyVariable(suffix);
    const raw = get(variable);
    if (raw !== undefined) legacyProviders.push({ name, folder: `LLM-${suffix}`, variable, checkUrl: httpUrl(variable, raw) });
  }

  const oneApiChannels = parseChannelMap(get('TSCHK_ONEAPI_CHANNELS'));
  const oneApiUrl =
    get('TSCHK_ONEAPI_DATABASE_URL') ??
    (get('ConnectionStrings__TS_Database') !== undefined ? adoNetToMysqlUrl(get('ConnectionStrings__TS_Database')!) : undefined);

  if (get('TSCHK_WEBHOOK_FORMAT') === 'telegram' && get('TSCHK_WEBHOOK_URL') !== undefined && get('TSCHK_TELEGRAM_CHAT_ID') === undefined) {
    throw new ConfigError(
      'TSCHK_TELEGRAM_CHAT_ID',
      'required with TSCHK_WEBHOOK_FORMAT=telegram: the chat id or @channel the bot writes to',
    );
  }

  return Object.freeze({
    database: database('TSCHK_DATABASE_URL', get('TSCHK_DATABASE_URL') ?? 'sqlite:./data/tschk.db'),
    cron: cronExpr,
    timezone,
    runOnStart: bool('TSCHK_RUN_ON_START', true),
    concurrency: int('TSCHK_CONCURRENCY', 32, 1, 10_000),
    providerConcurrency: int('TSCHK_PROVIDER_CONCURRENCY', 4, 1, 10_000),
    timeoutMs: int('TSCHK_TIMEOUT_MS', 40_000, 100, 600_000),
    retries: int('TSCHK_RETRIES', 2, 0, 10),
    retryBaseMs: int('TSCHK_RETRY_BASE_MS', 1_000, 0, 600_000),
    minIntervalS: int('TSCHK_MIN_INTERVAL_S', 600, 0, 30 * 86_400),
    historyDays: int('TSCHK_HISTORY_DAYS', 90, 1, 36_500),
    historyFlushMs: int('TSCHK_HISTORY_FLUSH_MS', 1_000, 10, 60_000),
    rollupDays: int('TSCHK_ROLLUP_DAYS', 400, 1, 36_500),
    shutdownGraceMs: int('TSCHK_SHUTDOWN_GRACE_MS', 30_000, 0, 600_000),
    shutdownWatchdogMs: int('TSCHK_SHUTDOWN_WATCHDOG_MS', 15_000, 100, 600_000),
    runLeaseMs: int('TSCHK_RUN_LEASE_MS', 30_000, 200, 600_000),
    trimCron,
    logLevel: oneOf('LOG_LEVEL', 'info', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
    http: {
      host: get('TSCHK_HTTP_HOST') ?? '0.0.0.0',
      port: int('TSCHK_HTTP_PORT', 3000, 0, 65_535),
      apiToken: get('TSCHK_API_TOKEN') ?? get('UserAuthorization'),
      metricsPublic: bool('TSCHK_METRICS_PUBLIC', false),
      trustProxy: bool('TSCHK_TRUST_PROXY', false),
      consoleSessionMinutes: int('TSCHK_CONSOLE_SESSION_MINUTES', 720, 1, 43_200),
    },
    legacyProviders,
    legacyDataDir: get('TSCHK_LEGACY_DATA_DIR'),
    legacyRevealKeys: bool('TSCHK_LEGACY_REVEAL_KEYS', false),
    prune: {
      mode: oneOf<PruneMode>('TSCHK_PRUNE', 'flag', ['off', 'flag', 'delete']),
      after: int('TSCHK_PRUNE_AFTER', 2, 1, 100),
      maxRatio: ratio('TSCHK_PRUNE_MAX_RATIO', 0.5),
      exhausted: bool('TSCHK_PRUNE_EXHAUSTED', false),
      recover: bool('TSCHK_RECOVER', true),
    },
    oneApi:
      oneApiUrl === undefined
        ? undefined
        : {
            database: database(
              get('TSCHK_ONEAPI_DATABASE_URL') !== undefined ? 'TSCHK_ONEAPI_DATABASE_URL' : 'ConnectionStrings__TS_Database',
              oneApiUrl,
            ),
            flavor: oneOf<OneApiFlavor>('TSCHK_ONEAPI_FLAVOR', 'one-api', ['one-api', 'new-api']),
            channels: oneApiChannels,
          },
    deepseek: {
      apiUrl: httpUrl('TSCHK_DEEPSEEK_API_URL', get('TSCHK_DEEPSEEK_API_URL') ?? 'https://api.deepseek.com'),
      platformUrl: httpUrl('TSCHK_DEEPSEEK_PLATFORM_URL', get('TSCHK_DEEPSEEK_PLATFORM_URL') ?? 'https://platform.deepseek.com'),
    },
    lowBalance: parseLowBalance(get('TSCHK_LOW_BALANCE')),
    notify: {
      uptimeKuma: parseUptimeKuma(get('TSCHK_UPTIME_KUMA_PUSH'), httpUrl),
      healthyRatio: ratio('TSCHK_HEALTHY_RATIO', 0.5),
      webhookUrls: (get('TSCHK_WEBHOOK_URL') ?? '')
        .split(',')
        .map((u) => u.trim())
        .filter(Boolean)
        .map((u) => httpUrl('TSCHK_WEBHOOK_URL', u)),
      webhookFormat: oneOf<WebhookFormat>('TSCHK_WEBHOOK_FORMAT', 'json', ['json', 'wecom', 'dingtalk', 'feishu', 'telegram']),
      webhookSecret: get('TSCHK_WEBHOOK_SECRET'),
      telegramChatId: get('TSCHK_TELEGRAM_CHAT_ID'),
    },
  } satisfies Config);
}

/**
 * Scheme and host only: the path, query and credentials of a webhook or push URL hold its key. A
 * value without a scheme shows its first part only when that looks like a host name; otherwise it
 * may be the bare key.
 */
function urlHint(raw: string): string {
  const m = /^(?:([a-z][a-z0-9+.-]*:\/\/)(?:[^/?#@]*@)?)?([^/?#]*)/is.exec(raw.trim())!;
  const [, scheme, host = ''] = m;
  if (scheme !== undefined || LOOKS_LIKE_HOST.test(host)) return `'${scheme ?? ''}${host}/…'`;
  return 'a value that is not a URL (not shown: it may hold a key)';
}

const LOOKS_LIKE_HOST = /^(?:localhost|(?:[a-z0-9-]+\.)+[a-z]{2,63}|\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-f:.]+\])(?::\d+)?$/i;

function validTimezone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** `server=HOST;port=3306;database=one-api;userid=USER;password=PASS;` → `mysql://USER:PASS@HOST:3306/one-api`. */
export function adoNetToMysqlUrl(raw: string): string {
  const parts = new Map<string, string>();
  for (const piece of raw.split(';')) {
    const eq = piece.indexOf('=');
    if (eq > 0) parts.set(piece.slice(0, eq).trim().toLowerCase().replace(/\s+/g, ''), piece.slice(eq + 1).trim());
  }
  const pick = (...keys: string[]) => keys.map((k) => parts.get(k)).find((v) => v !== undefined && v !== '');
  const host = pick('server', 'host', 'datasource', 'address');
  const database = pick('database', 'initialcatalog');
  if (!host || !database) {
    throw new ConfigError(
      'ConnectionStrings__TS_Database',
      'expected the ADO.NET form server=HOST;port=3306;database=NAME;userid=USER;password=PASS;',
    );
  }
  const user = pick('userid', 'uid', 'user', 'username');
  const password = pick('password', 'pwd');
  const auth = user ? `${encodeURIComponent(user)}${password ? ':' + encodeURIComponent(password) : ''}@` : '';
  return `mysql://${auth}${host}:${pick('port') ?? '3306'}/${encodeURIComponent(database)}`;
}

/** `deep:12,13;qwen:20` → deep → [12, 13], qwen → [20]. */
function parseChannelMap(raw: string | undefined): Map<string, number[]> {
  const map = new Map<string, number[]>();
  if (raw === undefined) return map;
  for (const entry of raw
    .split(';')
    .map((e) => e.trim())
    .filter(Boolean)) {
    const m = /^([A-Za-z0-9_-]+)\s*:\s*(\d+(?:\s*,\s*\d+)*)$/.exec(entry);
    if (!m) throw new ConfigError('TSCHK_ONEAPI_CHANNELS', `expected provider:id,id;provider:id, got '${entry}'`);
    map.set(
      m[1]!,
      m[2]!.split(',').map((s) => Number(s.trim())),
    );
  }
  return map;
}

/** `CNY:5,USD:1` → CNY → 5, USD → 1. */
function parseLowBalance(raw: string | undefined): Map<string, number> {
  const map = new Map<string, number>();
  if (raw === undefined) return map;
  for (const entry of raw
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean)) {
    const m = /^([A-Za-z]+)\s*:\s*(\d+(?:\.\d+)?)$/.exec(entry);
    if (!m) throw new ConfigError('TSCHK_LOW_BALANCE', `expected CURRENCY:AMOUNT[,…] such as CNY:5,USD:1, got '${entry}'`);
    map.set(m[1]!.toUpperCase() === 'TOKENS' ? 'tokens' : m[1]!.toUpperCase(), Number(m[2]));
  }
  return map;
}

/**
 * One URL for every pool, or `provider[/pool]=URL;…`. A bad entry is named by its position and
 * label, never by its text: that holds the push key.
 */
function parseUptimeKuma(raw: string | undefined, httpUrl: (name: string, raw: string) => string): Config['notify']['uptimeKuma'] {
  if (raw === undefined) return [];
  const name = 'TSCHK_UPTIME_KUMA_PUSH';
  if (!raw.includes('=') || /^https?:\/\//i.test(raw)) return [{ provider: undefined, pool: undefined, url: httpUrl(name, raw) }];
  const entries = raw
    .split(';')
    .map((e) => e.trim())
    .filter(Boolean);
  return entries.map((entry, i) => {
    const position = `entry ${i + 1} of ${entries.length}`;
    const m = /^([A-Za-z0-9_-]+)(?:\/([A-Za-z0-9_-]+))?\s*=\s*(\S+)$/.exec(entry);
    if (!m) {
      const which = entries.length === 1 ? 'the value is' : `${position} (entries are separated by ';') is`;
      throw new ConfigError(name, `expected a push URL or provider[/pool]=URL;…, but ${which} neither (not shown: it may hold a push key)`);
    }
    const [, provider, pool, url] = m;
    try {
      return { provider, pool, url: httpUrl(name, url!) };
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      const label = `${provider}${pool === undefined ? '' : `/${pool}`}=…`;
      throw new ConfigError(name, `${entries.length === 1 ? label : `${position} (${label})`}: ${err.detail}`);
    }
  });
}

/**
 * When main's watchdog ends a stop that hangs: the shutdown grace, then TSCHK_SHUTDOWN_WATCHDOG_MS
 * (15 s) for the HTTP server and the database to close. Docker's stop timeout (compose
 * `stop_grace_period`, 45 s) must be at least this, or Docker kills tschk first.
 */
export function stopWatchdogMs(env: Env): number {
  let graceMs = 30_000;
  let watchdogMs = 15_000;
  try {
    ({ shutdownGraceMs: graceMs, shutdownWatchdogMs: watchdogMs } = loadConfig(env));
  } catch {
    // A bad configuration already stopped start-up with its own message; keep the defaults.
  }
  return graceMs + watchdogMs;
}
