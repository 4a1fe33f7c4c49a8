import { LeaderClient } from "../../../src/client/leader-client.js";
import { readAll } from "../../helpers/task-logs.js";
import { checkDelivery, type DeliveryReport, flagged, servedLines, sumReports } from "./delivery-checker.js";
import { RecordingWorker, type RecordingWorkerOptions } from "./recording-worker.js";
import type { UnsafeWorker } from "./unsafe-worker.js";

/** What a worker (real or negative control) hands the checker. */
export interface WorkerOutcome {
  task: string;
  written: string[];
  acknowledged: string[];
}

/** Reads every task's log from the leader and checks it against its worker's record. */
export async function checkRun(url: string, runId: string, outcomes: readonly WorkerOutcome[]): Promise<DeliveryReport> {
  const client = new LeaderClient(url);
  try {
    const reports: DeliveryReport[] = [];
    for (const o of outcomes) {
      const served = servedLines(await readAll(client, runId, o.task));
      reports.push(checkDelivery({ written: o.written, acknowledged: o.acknowledged, served }));
    }
    return sumReports(reports);
  } finally {
    client.close();
  }
}

/** Sum of the acknowledged lines of some workers. */
export function ackedTotal(workers: ReadonlyArray<{ acknowledgedCount: number }>): number {
  return workers.reduce((sum, w) => sum + w.acknowledgedCount, 0);
}

/** `count` recording workers on one run, tasks `w0`…, at `linesPerTick` lines per 10 ms each. */
export function startWorkers(
  url: string,
  runId: string,
  count: number,
  options: Partial<Omit<RecordingWorkerOptions, "url" | "runId" | "task">> = {},
): RecordingWorker[] {
  return Array.from(
    { length: count },
    (_, i) => new RecordingWorker({ linesPerTick: 20, tickMs: 10, maxLines: 2_000_000, ...options, url, runId, task: `w${i}` }),
  );
}

/** Completes every worker's task and returns what each wrote and had acknowledged. */
export function finishWorkers(workers: readonly RecordingWorker[]): Promise<WorkerOutcome[]> {
  return Promise.all(workers.map(async (w) => ({ task: w.task, ...(await w.finish()) })));
}

/** Median and maximum of some durations. */
export function spread(values: readonly number[]): { median: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  return { median: sorted[Math.floor(sorted.length / 2)] ?? 0, max: sorted[sorted.length - 1] ?? 0 };
}

/** Stops a negative control, checks its task, and fails unless the checker flagged it. */
export async function checkControl(url: string, runId: string, control: UnsafeWorker): Promise<DeliveryReport> {
  const report = await checkRun(url, runId, [{ task: control.task, ...(await control.finish()) }]);
  if (!flagged(report)) throw new Error(`the negative control ${control.task} was not flagged: the check could not have failed`);
  return report;
}
