// Kysely ships as about 280 ES modules, and Node 20 pays for each one: loading them took most of
// `tschk status`'s start-up and grew the idle daemon by ~5 MB (the loader's garbage lifts V8's
// young generation). After `tsc`, this bundles Kysely into one module, dist/vendor/kysely.js, and
// points the built files' `from 'kysely'` at it. Tests run the sources against Kysely itself.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'rolldown';

// The folder of the built files: dist/, or the one given (a test bundles a copy of its own).
const dist = process.argv[2] ? resolve(process.argv[2]) : fileURLToPath(new URL('../dist/', import.meta.url));
const bundle = join(dist, 'vendor', 'kysely.js');

await build({
  input: fileURLToPath(import.meta.resolve('kysely')),
  platform: 'node',
  logLevel: 'warn',
  output: { file: bundle, format: 'esm' },
});

function* jsFiles(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* jsFiles(path);
    else if (entry.name.endsWith('.js')) yield path;
  }
}

const KYSELY = /(\bfrom\s*|\bimport\s*\(\s*)(['"])kysely\2/g;
let rewritten = 0;
// The Docker image builds without bench/.
for (const folder of ['src', 'migrations', 'bench'].filter((f) => existsSync(join(dist, f)))) {
  for (const file of jsFiles(join(dist, folder))) {
    const text = readFileSync(file, 'utf8');
    const target = relative(dirname(file), bundle);
    const out = text.replace(KYSELY, (_, lead, quote) => `${lead}${quote}${target.startsWith('.') ? target : `./${target}`}${quote}`);
    if (out !== text) {
      writeFileSync(file, out);
      rewritten++;
    }
  }
}
console.log(`kysely bundled into ${relative(process.cwd(), bundle)}; ${rewritten} built files point at it`);
