// ESLint: typescript-eslint's recommended rules with type information for the TypeScript (so that
// a promise nobody awaits or catches is an error), plain recommended rules for the few JavaScript
// files. Layout is Prettier's job (`npm run format`), not ESLint's.
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import globals from 'globals';
import tseslint from 'typescript-eslint';

// Values typed `any` on purpose, where the `no-unsafe-*` family would only add noise.
const anyAllowed = {
  '@typescript-eslint/no-explicit-any': 'off',
  '@typescript-eslint/no-unsafe-argument': 'off',
  '@typescript-eslint/no-unsafe-assignment': 'off',
  '@typescript-eslint/no-unsafe-member-access': 'off',
  '@typescript-eslint/no-unsafe-call': 'off',
  '@typescript-eslint/no-unsafe-return': 'off',
};

export default defineConfig(
  { ignores: ['dist/', 'coverage/', 'data/'] },
  { linterOptions: { reportUnusedDisableDirectives: 'error' } },
  js.configs.recommended,
  {
    files: ['**/*.ts', '**/*.mts'],
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // An `async` function that implements a Promise-returning interface without awaiting still
      // turns a throw into a rejection; dropping `async` to please this rule would change that.
      '@typescript-eslint/require-await': 'off',
      // `_name`: a parameter an interface requires, or a field left out of a copy on purpose.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true }],
    },
  },
  // Migrations take `Kysely<any>`: they must not depend on today's schema types (Kysely's advice).
  { files: ['migrations/**/*.ts'], rules: anyAllowed },
  // Tests read JSON answers and driver rows as `any` and let the assertions check their shape.
  { files: ['test/**/*.ts'], rules: anyAllowed },
  // Node everywhere but the browser console.
  { files: ['**/*.{ts,mts,js,mjs}'], ignores: ['web/*.ts'], languageOptions: { globals: globals.node } },
  { files: ['web/*.ts'], languageOptions: { globals: globals.browser } },
);
