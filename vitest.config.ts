import { defineConfig } from 'vitest/config';

// CI asks for a JSON report beside the usual output, to print one plain closing line from it.
const report = process.env.TSCHK_TEST_REPORT;

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    pool: 'forks',
    fileParallelism: true,
    isolate: false,
    // More workers than the 2 cores this is tuned on: most of the suite waits (real tschk processes,
    // database servers, leases), and the whole run keeps about 1.2 cores busy at 4 workers.
    // More than 4 starves the timing-bound tests on a loaded machine.
    maxWorkers: 4,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: report ? ['default', ['json', { outputFile: report }]] : ['default'],
  },
});
