import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'examples/**/*.test.ts'],
    exclude: ['**/node_modules/**', 'dist/**'],
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
