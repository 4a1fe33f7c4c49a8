/**
 * The fault suite's judge. Per task it compares what a worker wrote and saw
 * acknowledged with what the leader serves, and counts every way delivery can go
 * wrong. Lines carry unique text (`w3-000123`), so a line is known by its text.
 */

export interface TaskDelivery {
  /** Every line the worker handed to its writer, in order. */
  written: readonly string[];
  /** The lines the leader acknowledged as durable. */
  acknowledged: readonly string[];
  /** The lines the leader serves for the task, in order (the `line` of each record). */
  served: readonly string[];
}

export interface DeliveryReport {
  acknowledged: number;
  /** Acknowledged lines the leader does not serve. */
  lost: number;
  /** Extra copies of lines served more than once. */
  duplicated: number;
  /** Served lines the worker never wrote. */
  phantom: number;
  /** Served lines that come before a line written earlier than them. */
  reordered: number;
}

export function checkDelivery(task: TaskDelivery): DeliveryReport {
  const position = new Map<string, number>();
  for (const [i, line] of task.written.entries()) position.set(line, i);
  const seen = new Map<string, number>();
  let duplicated = 0;
  let phantom = 0;
  let reordered = 0;
  let furthest = -1;
  for (const line of task.served) {
    const count = (seen.get(line) ?? 0) + 1;
    seen.set(line, count);
    if (count > 1) {
      duplicated++;
      continue;
    }
    const at = position.get(line);
    if (at === undefined) {
      phantom++;
      continue;
    }
    if (at < furthest) reordered++;
    else furthest = at;
  }
  let lost = 0;
  for (const line of task.acknowledged) if (!seen.has(line)) lost++;
  return { acknowledged: task.acknowledged.length, lost, duplicated, phantom, reordered };
}

/** The reports of several tasks added up. */
export function sumReports(reports: readonly DeliveryReport[]): DeliveryReport {
  const total: DeliveryReport = { acknowledged: 0, lost: 0, duplicated: 0, phantom: 0, reordered: 0 };
  for (const r of reports) {
    total.acknowledged += r.acknowledged;
    total.lost += r.lost;
    total.duplicated += r.duplicated;
    total.phantom += r.phantom;
    total.reordered += r.reordered;
  }
  return total;
}

/** True when the report shows any fault: what a negative control must produce. */
export function flagged(report: DeliveryReport): boolean {
  return report.lost + report.duplicated + report.phantom + report.reordered > 0;
}

/** The `line` fields of a task's canonical JSONL. */
export function servedLines(jsonl: string): string[] {
  const lines: string[] = [];
  for (const record of jsonl.split("\n")) {
    if (record === "") continue;
    lines.push((JSON.parse(record) as { line: string }).line);
  }
  return lines;
}
