import { decodeChunk, encodeChunk } from "./chunk-codec.js";
import type { KvOp, KvStore } from "./kv-store.js";
import { chunkKey, chunkOffset, chunkRange, taskStateKey } from "./log-keys.js";
import { decodeTaskLogState, encodeTaskLogState, type TaskLogState } from "./task-log-state.js";

const NEWLINE = 0x0a;

/** A slice of a task log: whole records starting at `offset`. */
export interface LogSlice {
  offset: number;
  data: Buffer;
}

/**
 * The job-log store: chunks of canonical JSONL plus each task's state, in one
 * RocksDB. Writes are built as ops for the commit queue; reads seek.
 */
export class LogStore {
  constructor(readonly kv: KvStore) {}

  async loadState(run: string, task: string): Promise<TaskLogState | undefined> {
    const value = await this.kv.get(taskStateKey(run, task));
    return value === undefined ? undefined : decodeTaskLogState(value);
  }

  chunkOp(run: string, task: string, offset: number, jsonl: Buffer): KvOp {
    return { type: "put", key: chunkKey(run, task, offset), value: encodeChunk(jsonl) };
  }

  stateOp(run: string, task: string, state: TaskLogState): KvOp {
    return { type: "put", key: taskStateKey(run, task), value: encodeTaskLogState(state) };
  }

  /** Drops every chunk of a task (its buffer) with one range delete; the task's state stays. */
  async dropChunks(run: string, task: string): Promise<void> {
    const range = chunkRange(run, task);
    await this.kv.deleteRange(range.gte, range.lt);
  }

  /**
   * Reads whole records from `offset` (moved forward to the next record start when
   * it falls inside one) up to `end`, stopping after `maxBytes` but returning at
   * least one record. Seeks to the chunk holding `offset`; never scans from 0.
   */
  async read(run: string, task: string, offset: number, end: number, maxBytes: number): Promise<LogSlice> {
    if (offset >= end) return { offset: end, data: Buffer.alloc(0) };
    const range = chunkRange(run, task);
    const floor = await this.kv.first({ gte: range.gte, lte: chunkKey(run, task, offset), reverse: true });
    const startKey = floor?.[0] ?? range.gte;

    const parts: Buffer[] = [];
    let start = -1;
    let total = 0;
    for await (const [key, value] of this.kv.entries({ gte: startKey, lt: range.lt }, 4)) {
      const chunkStart = chunkOffset(key);
      if (chunkStart >= end) break;
      let chunk = decodeChunk(value);
      if (chunkStart + chunk.length > end) chunk = chunk.subarray(0, end - chunkStart);
      if (start < 0) {
        let skip = Math.max(0, offset - chunkStart);
        // An offset inside a record starts at the next one: canonical records hold no raw newline.
        if (skip > 0 && chunk[skip - 1] !== NEWLINE) {
          const nl = chunk.indexOf(NEWLINE, skip);
          skip = nl < 0 ? chunk.length : nl + 1;
        }
        if (skip >= chunk.length) continue;
        start = chunkStart + skip;
        chunk = chunk.subarray(skip);
      }
      const room = maxBytes - total;
      if (chunk.length > room) {
        const cut = total === 0 ? firstRecordsWithin(chunk, room) : lastNewlineWithin(chunk, room);
        if (cut > 0) {
          parts.push(chunk.subarray(0, cut));
          total += cut;
        }
        break;
      }
      parts.push(chunk);
      total += chunk.length;
    }
    if (start < 0) return { offset: end, data: Buffer.alloc(0) };
    return { offset: start, data: parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, total) };
  }
}

/** Bytes of the whole records that fit in `room`; 0 when even the first does not. */
function lastNewlineWithin(chunk: Buffer, room: number): number {
  const nl = chunk.lastIndexOf(NEWLINE, room - 1);
  return nl < 0 ? 0 : nl + 1;
}

/** Like lastNewlineWithin, but always at least the first record. */
function firstRecordsWithin(chunk: Buffer, room: number): number {
  const fit = lastNewlineWithin(chunk, room);
  if (fit > 0) return fit;
  return chunk.indexOf(NEWLINE) + 1;
}
