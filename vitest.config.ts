import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    reporters: ["default", "./test/helpers/summary-reporter.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Leaders, RocksDB and child processes per file: keep the 2-core machine from thrashing.
    maxWorkers: 2,
    fileParallelism: true,
  },
});
