// `node --import ./test/helpers/ts-loader.mjs src/main.ts`: runs the TypeScript sources in a real
// process without a build, for tests that need one (a hang, a signal, another uid). Types are
// stripped file by file (no type check: `npm run typecheck` does that).
import { register } from 'node:module';

register('./ts-hooks.mjs', import.meta.url);
