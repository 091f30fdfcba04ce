import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'examples/**/*.test.ts'],
    // test/stress holds long runs kept out of `npm test` (see README); `npm run test:stress` runs them.
    exclude: ['**/node_modules/**', 'dist/**', ...(process.env.VMNET_STRESS ? [] : ['test/stress/**'])],
    // e2e tests boot real guests under TCG; give them room but never skip them.
    testTimeout: 300_000,
    hookTimeout: 120_000,
    // Two cores: QEMU guests run inside the e2e files, so keep file parallelism modest.
    maxWorkers: 2,
    // .ci/run asks for a JSON report to print its closing summary line.
    reporters: process.env.VMNET_TEST_REPORT ? ['default', 'json'] : ['default'],
    ...(process.env.VMNET_TEST_REPORT ? { outputFile: { json: process.env.VMNET_TEST_REPORT } } : {}),
  },
});
