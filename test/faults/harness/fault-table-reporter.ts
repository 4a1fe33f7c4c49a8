import type { Reporter } from "vitest/node";
import { formatTable, takeScenarioRows } from "./fault-results.js";

/** Prints the fault suite's table (one row per scenario) after the run. */
export default class FaultTableReporter implements Reporter {
  onTestRunEnd(): void {
    const rows = takeScenarioRows();
    if (rows.length > 0) process.stdout.write(`\nfault suite\n${formatTable(rows)}\n`);
  }
}
