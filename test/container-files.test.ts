// The container files against what tschk does: what the build context may hold, and whether Docker
// waits long enough on a stop for tschk's own watchdog.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { stopWatchdogMs } from '../src/config.js';

const GLOB: Record<string, string> = { '**/': '(?:.*/)?', '**': '.*', '*': '[^/]*', '?': '[^/]' };

const read = (name: string) => readFileSync(new URL(`../${name}`, import.meta.url), 'utf8');

/**
 * Docker's rules: one pattern a line, `#` comments, a leading or trailing `/` means nothing, `*` and
 * `?` stay within one path part, `**` spans parts, `!` takes a path back, the last matching line
 * wins, and a pattern matching a folder leaves out everything in it.
 */
function dockerIgnored(patterns: string, path: string): boolean {
  const rules = patterns
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const glob = (negate ? l.slice(1) : l).replace(/^\/+|\/+$/g, '');
      const source = glob
        .split(/(\*\*\/?|\*|\?)/)
        .map((part) => GLOB[part] ?? part.replace(/[.+^${}()|[\]\\]/g, '\\$&'))
        .join('');
      return { negate, re: new RegExp(`^${source}$`) };
    });
  const parts = path.split('/');
  let ignored = false;
  for (const { negate, re } of rules) {
    for (let i = 1; i <= parts.length; i++) {
      if (re.test(parts.slice(0, i).join('/'))) {
        ignored = !negate;
        break;
      }
    }
  }
  return ignored;
}

describe('.dockerignore', () => {
  const patterns = read('.dockerignore');

  it.each([
    '.env',
    'data/tschk.db',
    'pgdata/base/1/1259',
    'wwwroot/LLM-Deep/token.json',
    'node_modules/kysely/package.json',
    'dist/src/main.js',
    'backup.db',
  ])('keeps %s (secrets, data, local builds) out of the build context', (path) => {
    expect(dockerIgnored(patterns, path)).toBe(true);
  });

  it.each([
    'package.json',
    'package-lock.json',
    'tsconfig.json',
    'tsconfig.build.json',
    'src/main.ts',
    'migrations/index.ts',
    'web/app.ts',
    'web/build.mjs',
    'web/console.css',
    'scripts/bundle-kysely.mjs',
  ])('sends %s, which the build copies', (path) => {
    expect(dockerIgnored(patterns, path)).toBe(false);
  });
});

describe('Dockerfile', () => {
  it("gives node-gyp the image's Node headers before npm ci builds better-sqlite3", () => {
    const build = read('Dockerfile')
      .split(/^FROM /m)
      .find((stage) => /^\S+ AS build\b/.test(stage))!;
    const nodedir = build.search(/^ENV npm_config_nodedir=\/usr\/local$/m);
    expect(nodedir).toBeGreaterThan(-1);
    expect(nodedir).toBeLessThan(build.search(/^RUN npm ci\b/m));
  });

  it('copies the web console into the build stage before npm run build, and the built dist/web into the image', () => {
    const [, build, runtime] = read('Dockerfile').split(/^FROM /m);
    expect(build!.search(/^COPY web \.\/web$/m)).toBeGreaterThan(-1);
    expect(build!.search(/^COPY web \.\/web$/m)).toBeLessThan(build!.search(/^RUN npm run build\b/m));
    expect(runtime).toMatch(/^COPY --from=build \/app\/dist \.\/dist$/m);
  });

  it('copies the script that bundles Kysely into the build stage before npm run build', () => {
    const [, build] = read('Dockerfile').split(/^FROM /m);
    const copy = build!.search(/^COPY scripts\/bundle-kysely\.mjs \.\/scripts\/$/m);
    expect(copy).toBeGreaterThan(-1);
    expect(copy).toBeLessThan(build!.search(/^RUN npm run build\b/m));
  });
});

describe("compose's stop_grace_period", () => {
  /** The lines of the tschk service, up to the next service. */
  const tschkService = () => {
    const compose = read('docker-compose.yml');
    const head = '\n  tschk:\n';
    const body = compose.slice(compose.indexOf(head) + head.length);
    return body.slice(0, body.search(/^ {2}[a-z-]+:$/m));
  };

  it("is at least tschk's watchdog: the shutdown grace compose sets (or the default), plus 15 s", () => {
    const service = tschkService();
    const grace = /^\s+stop_grace_period:\s*(\d+)s\s*$/m.exec(service);
    expect(grace, 'stop_grace_period in seconds').not.toBeNull();
    const env: Record<string, string> = {};
    const setting = /^\s+TSCHK_SHUTDOWN_GRACE_MS:\s*"?(\d+)"?\s*$/m.exec(service);
    if (setting) env.TSCHK_SHUTDOWN_GRACE_MS = setting[1]!;
    expect(Number(grace![1]) * 1000).toBeGreaterThanOrEqual(stopWatchdogMs(env));
  });
});

describe('stopWatchdogMs', () => {
  it.each([
    [{}, 45_000],
    [{ TSCHK_SHUTDOWN_GRACE_MS: '0' }, 15_000],
    [{ TSCHK_SHUTDOWN_GRACE_MS: '60000' }, 75_000],
    [{ TSCHK_SHUTDOWN_GRACE_MS: '0', TSCHK_SHUTDOWN_WATCHDOG_MS: '300' }, 300],
    // A bad value already stopped start-up with its message; a signal meanwhile takes the default.
    [{ TSCHK_SHUTDOWN_GRACE_MS: 'soon' }, 45_000],
  ])('%o → %i ms after the first signal', (env, ms) => {
    expect(stopWatchdogMs(env)).toBe(ms);
  });
});
