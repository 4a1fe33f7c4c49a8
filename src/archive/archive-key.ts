import { identifierProblem } from "../ids/identifiers.js";

/**
 * Object keys of a run in the archive. Everything of a run hangs off one base,
 * `{prefix}{workspace}/{workflow}/YYYY/MM/DD/YYYY-MM-DDTHH-MM-SS_{run_id}` (UTC,
 * the run's start):
 *
 * - `{base}.jsonl.gz`     the run's object, written once the run is complete
 * - `{base}.index.json`   its index: where each task's gzip members lie
 * - `{base}.parts/{task}/{offset}-{end}.jsonl.gz`  segments uploaded by periodic
 *   flushes while the run is going; removed once the run's object is verified
 *
 * Identifiers are checked again here, whatever the caller did: they become path
 * segments, and a `..` or a `/` would let a run write outside its prefix.
 */

export interface RunPlace {
  runId: string;
  workspace: string;
  workflow: string;
  startedAt: number;
}

const pad = (n: number, width = 2) => String(n).padStart(width, "0");

function checked(field: "workspace" | "workflow" | "run_id" | "task", value: string): string {
  const problem = identifierProblem(field, value);
  if (problem) throw new Error(`archive key: ${problem}`);
  return value;
}

/** The base every key of the run starts with. */
export function runKeyBase(prefix: string, run: RunPlace): string {
  const t = new Date(run.startedAt);
  if (Number.isNaN(t.getTime())) throw new Error(`archive key: run ${run.runId} has no valid start time`);
  const [y, mo, d] = [t.getUTCFullYear(), pad(t.getUTCMonth() + 1), pad(t.getUTCDate())];
  const stamp = `${y}-${mo}-${d}T${pad(t.getUTCHours())}-${pad(t.getUTCMinutes())}-${pad(t.getUTCSeconds())}`;
  return `${prefix}${checked("workspace", run.workspace)}/${checked("workflow", run.workflow)}/${y}/${mo}/${d}/${stamp}_${checked("run_id", run.runId)}`;
}

export const runObjectKey = (base: string) => `${base}.jsonl.gz`;
export const runIndexKey = (base: string) => `${base}.index.json`;
export const segmentsPrefix = (base: string) => `${base}.parts/`;

/**
 * A segment's key: its task and the byte range it holds, zero-padded so keys sort
 * in offset order. The end is part of the key because a request can land late: an
 * upload of [from, e1) by a leader that was killed may reach the store after its
 * successor uploaded and verified [from, e2); with the offset alone it would
 * overwrite that verified segment.
 */
export function segmentKey(base: string, task: string, offset: number, end: number): string {
  return `${segmentsPrefix(base)}${checked("task", task)}/${pad(offset, 16)}-${pad(end, 16)}.jsonl.gz`;
}
