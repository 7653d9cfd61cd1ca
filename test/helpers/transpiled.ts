// The sources as plain JavaScript, once per test run, for the tests that start real tschk
// processes: loading the TypeScript compiler and stripping every file again in each process cost
// about a second of CPU per process. The same file-by-file stripping as ts-hooks.mjs (no type
// check); without it (a test file run outside the global setup) processes use ts-loader.mjs.
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { TRANSPILED_ENV } from './spawn.js';

export { TRANSPILED_ENV };

const root = fileURLToPath(new URL('../../', import.meta.url));

function* tsFiles(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* tsFiles(path);
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) yield path;
  }
}

/** Writes src/ and migrations/ as .js into a new folder beside the package's files; returns it. */
export function transpileSources(): { dir: string; remove: () => void } {
  const steps = transpileSteps();
  let step = steps.next();
  while (!step.done) step = steps.next();
  return step.value;
}

/**
 * The same, giving the event loop a turn after each file: global setup does this while the
 * database servers start, whose progress (a child's exit, a port that answers) needs those turns.
 */
export async function transpileSourcesInTurns(): Promise<{ dir: string; remove: () => void }> {
  const steps = transpileSteps();
  let step = steps.next();
  while (!step.done) {
    await new Promise((resolve) => setImmediate(resolve));
    step = steps.next();
  }
  return step.value;
}

function* transpileSteps(): Generator<void, { dir: string; remove: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), 'tschk-test-js-'));
  // Readable by the other uid some tests run tschk as.
  chmodSync(dir, 0o755);
  for (const folder of ['src', 'migrations']) {
    for (const file of tsFiles(join(root, folder))) {
      const { outputText } = ts.transpileModule(readFileSync(file, 'utf8'), {
        fileName: file,
        compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2023, sourceMap: false, verbatimModuleSyntax: false },
      });
      const out = join(dir, relative(root, file)).replace(/\.ts$/, '.js');
      mkdirSync(dirname(out), { recursive: true, mode: 0o755 });
      writeFileSync(out, outputText, { mode: 0o644 });
      yield;
    }
  }
  // package.json makes the files ESM and is how the code finds its package root (dist/web).
  writeFileSync(join(dir, 'package.json'), readFileSync(join(root, 'package.json')), { mode: 0o644 });
  for (const link of ['node_modules', 'dist']) symlinkSync(join(root, link), join(dir, link));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
