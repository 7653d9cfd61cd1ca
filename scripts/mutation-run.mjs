#!/usr/bin/env node
// A hand-written mutation run: each mutant replaces one exact piece of source text, runs the test
// files that guard it (SQLite only), and is "killed" when they fail. The source is restored after
// each mutant, also on Ctrl-C.
//
//   node scripts/mutation-run.mjs [scripts/mutants.json] [--only ID,ID]
//
// A mutant: { "id": "...", "file": "src/...", "from": "exact text", "to": "replacement",
// "tests": ["test/....test.ts"] }. `from` must occur exactly once in the file.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
const argv = process.argv.slice(2);
const onlyAt = argv.indexOf('--only');
const only = onlyAt >= 0 ? new Set(argv[onlyAt + 1].split(',')) : undefined;
const listFile = argv.find((a, i) => !a.startsWith('--') && (onlyAt < 0 || i !== onlyAt + 1)) ?? 'scripts/mutants.json';
const mutants = JSON.parse(readFileSync(new URL(listFile, `file://${root}`), 'utf8')).filter((m) => !only || only.has(m.id));

let restore;
process.on('SIGINT', () => {
  restore?.();
  process.exit(130);
});

const results = [];
for (const m of mutants) {
  const path = `${root}${m.file}`;
  const original = readFileSync(path, 'utf8');
  const count = original.split(m.from).length - 1;
  if (count !== 1) {
    results.push({ ...m, outcome: `invalid (text found ${count} times)` });
    console.log(`${m.id}: invalid, '${m.from}' found ${count} times in ${m.file}`);
    continue;
  }
  restore = () => writeFileSync(path, original);
  writeFileSync(path, original.replace(m.from, m.to));
  const began = Date.now();
  const r = spawnSync('npx', ['vitest', 'run', ...m.tests], {
    cwd: root,
    env: { ...process.env, TSCHK_TEST_DIALECTS: 'sqlite', NO_COLOR: '1', TSCHK_SCREENSHOTS: '0' },
    encoding: 'utf8',
    timeout: m.timeoutMs ?? 180_000,
  });
  restore();
  restore = undefined;
  const outcome = r.status === 0 ? 'SURVIVED' : r.error ? `killed (timeout: ${r.error.message})` : 'killed';
  const failed = (r.stdout ?? '')
    .split('\n')
    .filter((l) => /^\s+(×|FAIL)/.test(l))
    .slice(0, 3)
    .map((l) => l.trim());
  results.push({ id: m.id, file: m.file, outcome, failed, seconds: Math.round((Date.now() - began) / 1000) });
  console.log(`${m.id}: ${outcome} (${Math.round((Date.now() - began) / 1000)} s)${failed.length ? `\n    ${failed.join('\n    ')}` : ''}`);
}

const survived = results.filter((r) => r.outcome === 'SURVIVED');
console.log(
  `\n${results.length} mutants, ${results.filter((r) => r.outcome.startsWith('killed')).length} killed, ${survived.length} survived`,
);
for (const s of survived) console.log(`  survived: ${s.id} (${s.file})`);
process.exitCode = survived.length > 0 ? 1 : 0;
