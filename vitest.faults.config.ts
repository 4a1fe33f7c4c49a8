import { tmpdir } from "node:os";
import { join } from "node:path";
import { defineConfig } from "vitest/config";

// Scenario files share one results file; the table reporter prints and removes it.
process.env.JOBLOG_FAULTS_RESULTS = join(tmpdir(), `joblog-faults-${process.pid}.jsonl`);

/**
 * The fault suite (`npm run test:faults`): real leader processes killed, cut off,
 * starved of disk. One scenario at a time, so each has the machine's two cores and
 * its recovery times mean something.
 */
export default defineConfig({
  test: {
    include: ["test/faults/**/*.faults.ts"],
    reporters: ["default", "./test/faults/harness/fault-table-reporter.ts", "./test/helpers/summary-reporter.ts"],
    setupFiles: ["./test/faults/harness/failure-output.ts"],
    testTimeout: 300_000,
    hookTimeout: 60_000,
    fileParallelism: false,
    maxWorkers: 1,
  },
});
