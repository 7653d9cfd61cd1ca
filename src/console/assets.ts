import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The console's files, built by `npm run build` into dist/web and served from memory: no CDN,
 * nothing fetched at run time. Found from this module upwards (src/console when tests run the
 * sources, dist/src/console when built), at the package root's dist/web.
 */

export interface Asset {
  body: string;
  contentType: string;
  etag: string;
}

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

function packageRoot(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error('the tschk package root (with package.json) was not found above src/console');
  }
}

export const assetDir = (): string => join(packageRoot(), 'dist', 'web');

let cached: Map<string, Asset> | undefined;

/** Every asset by file name; empty when the console was not built (the page then says so). */
export function assets(): ReadonlyMap<string, Asset> {
  if (cached) return cached;
  const out = new Map<string, Asset>();
  const dir = assetDir();
  if (existsSync(dir)) {
    for (const name of readdirSync(dir)) {
      const type = TYPES[extname(name)];
      if (!type || !/^[a-z0-9-]+\.[a-z]+$/.test(name)) continue;
      const body = readFileSync(join(dir, name), 'utf8');
      out.set(name, { body, contentType: type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` });
    }
  }
  // Tests build the assets before the first daemon starts; a process keeps what it found then.
  if (out.size > 0) cached = out;
  return out;
}

/** The browser's modules, so that the page can ask for all of them at once instead of one import at a time. */
export function modules(): string[] {
  return [...assets().keys()].filter((n) => n.endsWith('.js')).sort();
}
