// `npm run build` bundles Kysely into one module and points the built files at it
// (scripts/bundle-kysely.mjs); the other tests run the sources against Kysely itself. This one runs
// the script over a copy of this run's transpiled sources and starts tschk from the result.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TRANSPILED_ENV } from './helpers/spawn.js';

const root = fileURLToPath(new URL('../', import.meta.url));
let dir: string;

function* jsFiles(folder: string): Generator<string> {
  for (const entry of readdirSync(folder, { withFileTypes: true })) {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) yield* jsFiles(path);
    else if (entry.name.endsWith('.js')) yield path;
  }
}

beforeAll(() => {
  const transpiled = process.env[TRANSPILED_ENV];
  if (!transpiled) throw new Error(`${TRANSPILED_ENV} is not set: test/global-setup.ts transpiles the sources`);
  dir = mkdtempSync(join(tmpdir(), 'tschk-test-bundle-'));
  for (const folder of ['src', 'migrations']) cpSync(join(transpiled, folder), join(dir, folder), { recursive: true });
  cpSync(join(root, 'package.json'), join(dir, 'package.json'));
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
  const r = spawnSync(process.execPath, [join(root, 'scripts/bundle-kysely.mjs'), dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`bundle-kysely.mjs exited ${r.status}: ${r.stderr}`);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('points every built file that used Kysely at the one bundled module', () => {
  const left = [...jsFiles(join(dir, 'src')), ...jsFiles(join(dir, 'migrations'))].filter((f) =>
    /\bfrom\s*['"]kysely['"]|\bimport\s*\(\s*['"]kysely['"]/.test(readFileSync(f, 'utf8')),
  );
  expect(left).toEqual([]);
  expect(readFileSync(join(dir, 'src/db/connect.js'), 'utf8')).toContain("from '../../vendor/kysely.js'");
});

it('the bundled tschk migrates a new database and answers tschk status from it', () => {
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', TSCHK_DATABASE_URL: `sqlite:${join(dir, 'tschk.db')}` };
  const r = spawnSync(process.execPath, [join(dir, 'src/main.js'), 'status'], { env, encoding: 'utf8', timeout: 20_000 });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  expect(r.stdout).toBe('no tokens\nno run yet\n');
});
