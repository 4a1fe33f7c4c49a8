import { appendFileSync, readFileSync, rmSync } from "node:fs";
import type { DeliveryReport } from "./delivery-checker.js";

/** One row of the table the fault suite prints at its end. */
export interface ScenarioRow {
  scenario: string;
  iterations: number;
  report: DeliveryReport;
  /** Longest time from a fault's end to the first acknowledgement after it, in ms. */
  recoveryMs: number;
  /** What the scenario's negative control was and what the checker found in it. */
  negativeControl: string;
  notes?: string;
}

/** Where rows go: a file named by the suite's vitest config, shared by its test files. */
const resultsFile = () => process.env.JOBLOG_FAULTS_RESULTS;

export function recordScenario(row: ScenarioRow): void {
  const file = resultsFile();
  if (file) appendFileSync(file, `${JSON.stringify(row)}\n`);
}

export function takeScenarioRows(): ScenarioRow[] {
  const file = resultsFile();
  if (!file) return [];
  let text = "";
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return [];
  }
  rmSync(file, { force: true });
  return text
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as ScenarioRow);
}

export function formatTable(rows: readonly ScenarioRow[]): string {
  const header = ["scenario", "iterations", "acked lines", "lost", "duplicated", "phantom", "reordered", "recovery", "negative control"];
  const body = rows.map((r) => [
    r.scenario,
    String(r.iterations),
    String(r.report.acknowledged),
    String(r.report.lost),
    String(r.report.duplicated),
    String(r.report.phantom),
    String(r.report.reordered),
    `${(r.recoveryMs / 1000).toFixed(2)} s`,
    r.negativeControl,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => (row[i] ?? "").length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(" | ")} |`;
  const notes = rows.filter((r) => r.notes).map((r) => `${r.scenario}: ${r.notes}`);
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...body.map(line), ...notes].join("\n");
}
