import type { TaskCompletionState } from "../store/task-log-state.js";
import type { MemberTable } from "./gzip-members.js";

/**
 * The index of a run's object (`{base}.index.json`): for each task, in the order
 * its log appears in the object, its length and completion and where its gzip
 * members lie. A reader fetches this once (it is small: one pair of numbers per
 * 256 KiB of log) and then only the members it needs.
 */
export interface RunIndex {
  version: 1;
  runId: string;
  workspace: string;
  workflow: string;
  startedAt: string;
  /** Size of the run's object in bytes. */
  size: number;
  tasks: IndexedTask[];
}

export interface IndexedTask {
  task: string;
  length: number;
  records: number;
  startedAt: number;
  /**
   * The task's last stored sequence number and when it was opened: what a leader
   * rebuilding the run from the archive (archive-reindex.ts) needs beyond the rest.
   * Absent in indexes written before they were added (read as 0 and `startedAt`).
   */
  seq?: number;
  openedAt?: number;
  completion?: TaskCompletionState;
  /** Where the archived log begins when the per-task size cap dropped its start (absent: 0). */
  retainedFrom?: number;
  /** Object byte range of this task's members. */
  gzStart: number;
  gzEnd: number;
  /** [log offset, object offset] of each member. */
  members: Array<[number, number]>;
}

export function encodeRunIndex(index: RunIndex): Buffer {
  return Buffer.from(`${JSON.stringify(index)}\n`);
}

export function decodeRunIndex(bytes: Buffer, key: string): RunIndex {
  const index = JSON.parse(bytes.toString("utf8")) as RunIndex;
  if (index.version !== 1 || !Array.isArray(index.tasks))
    throw new Error(`${key} is not a joblog run index of a version this leader reads`);
  return index;
}

export function tableOf(task: IndexedTask): MemberTable {
  return { plain: task.members.map((m) => m[0]), gz: task.members.map((m) => m[1]), plainEnd: task.length, gzEnd: task.gzEnd };
}

export function membersOf(table: MemberTable): Array<[number, number]> {
  return table.plain.map((p, i) => [p, table.gz[i] as number]);
}
