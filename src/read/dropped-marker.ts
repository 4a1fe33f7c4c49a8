import { encodeRecord } from "../ingest/record-encoder.js";
import { MIN_DROP_BYTES } from "../ingest/task-size-cap.js";

/**
 * The record a Read or Tail of a task log's dropped range gets instead of the
 * dropped bytes (see `retention.max_task_bytes`): one `_server`-style record in
 * the task's own shape, placed so that it ends exactly where the retained log
 * begins. Its offset is `retainedFrom` minus its length, so `offset` + the length
 * of `data` is still `next_offset` for every client that counts bytes.
 */
export function droppedMarker(task: string, retainedFrom: number, tsMs: number): Buffer {
  const line = `[joblog] ${retainedFrom} bytes dropped (per-task size cap, retention.max_task_bytes: the newest output is kept); the log continues at offset ${retainedFrom}`;
  const marker = Buffer.from(encodeRecord(tsMs, "stderr", task, line), "utf8");
  // Task names are at most 128 characters: the marker always fits the smallest drop.
  if (marker.length > MIN_DROP_BYTES) throw new Error(`dropped-range marker of ${marker.length} bytes does not fit`);
  return marker;
}

/** The capture time of the first record of canonical JSONL (`{"ts":"…"`), or undefined. */
export function firstRecordTime(jsonl: Buffer): number | undefined {
  if (jsonl.length < 31) return undefined;
  const ms = Date.parse(jsonl.toString("latin1", 7, 31));
  return Number.isNaN(ms) ? undefined : ms;
}
