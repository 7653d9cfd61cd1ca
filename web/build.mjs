// Builds the web console into dist/web: each TypeScript module transpiled on its own (the
// browser loads them as ES modules, no bundler), the stylesheet and the icon copied.
// `npm run typecheck` type-checks these files with web/tsconfig.json.
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const here = dirname(fileURLToPath(import.meta.url));

export function buildConsole(out = join(here, '..', 'dist', 'web')) {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  for (const name of readdirSync(here)) {
    if (name.endsWith('.ts')) {
      const { outputText } = ts.transpileModule(readFileSync(join(here, name), 'utf8'), {
        compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ES2022, verbatimModuleSyntax: true, removeComments: true },
        fileName: name,
      });
      writeFileSync(join(out, name.replace(/\.ts$/, '.js')), outputText);
    } else if (name.endsWith('.css') || name.endsWith('.svg')) {
      copyFileSync(join(here, name), join(out, name));
    }
  }
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) console.log(`console built into ${buildConsole()}`);
