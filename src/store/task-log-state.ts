/**
 * What the log store knows about one task log. It is written in the same atomic
 * batch as the lines it describes, so after a crash the high-water mark never
 * claims a line that is not stored, nor misses one that is.
 */
export interface TaskLogState {
  /** Sequence number of the last pushed line stored (0: none). Leader-written records take none. */
  seq: number;
  /** Byte length of the JSONL log. */
  length: number;
  /** Number of records a reader sees: after a drop under the size cap, the marker and the retained records. */
  records: number;
  startedAt: number;
  completion?: TaskCompletionState;
  /**
   * The log was verified in the archive and its chunks were dropped from this store:
   * reads go to the archive. Only ever set on a completed log.
   */
  archived?: true;
  /**
   * Where the retained log begins: the bytes before it were dropped under the
   * per-task size cap (whole chunks, oldest first). Offsets never move; reads of
   * the dropped range get one marker record. Absent: nothing was dropped.
   */
  retainedFrom?: number;
}

export interface TaskCompletionState {
  result: "succeeded" | "failed";
  exitCode: number;
  signal: string;
  endedAt: number;
}

export function emptyTaskLogState(startedAt: number): TaskLogState {
  return { seq: 0, length: 0, records: 0, startedAt };
}

export function encodeTaskLogState(state: TaskLogState): Buffer {
  return Buffer.from(JSON.stringify(state));
}

export function decodeTaskLogState(value: Buffer): TaskLogState {
  return JSON.parse(value.toString("utf8")) as TaskLogState;
}
