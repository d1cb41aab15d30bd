import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // Two cores: integration tests spawn pg_dump, gpg and MinIO; keep the worker count small.
    maxWorkers: 2,
    pool: 'forks',
    // The console summary for people, a JSON report for .ci/run's closing "N passed, N failed".
    reporters: ['default', 'json'],
    outputFile: { json: '.test-tmp/vitest-report.json' },
  },
});
