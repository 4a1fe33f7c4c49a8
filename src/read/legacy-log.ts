import { createReadStream, type Stats } from "node:fs";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { RUN_LOG_TASK } from "../ids/identifiers.js";
import { decodeLine, encodeRecord } from "../ingest/record-encoder.js";
import type { LogSlice } from "../store/log-store.js";
import type { TaskLogState } from "../store/task-log-state.js";

const NEWLINE = 0x0a;
const CR = 0x0d;
/** Lengths of legacy logs remembered (by file identity), so a Read does not scan a file twice to learn it. */
const LENGTH_CACHE = 1024;

/**
 * Plain-text logs a previous system left in `{local_dir}/{run_id}.log`. A file is
 * one log, the run log: each line reads as a `stdout` record of task `_run`,
 * stamped with the file's modification time; offsets are into that JSONL, as for
 * every log. Files are streamed, never loaded whole; the JSONL length of a file is
 * computed once. Whether a file may be read at all (its run id unknown to joblog,
 * the caller's scope) is decided by the reader and the access control.
 */
export class LegacyLogs {
  private readonly lengths = new Map<string, { length: number; records: number }>();

  constructor(
    private readonly dir: string,
    private readonly maxLineBytes: number,
  ) {}

  /** The path of a run's legacy log. Run ids are identifiers (no `/`, no `..`), checked at the RPC edge. */
  private pathOf(run: string): string {
    if (run.includes("/") || run.includes("\\") || run.includes("..") || run.includes("\0"))
      throw new Error(`unsafe run id ${JSON.stringify(run)}`);
    return join(this.dir, `${run}.log`);
  }

  /** Whether a legacy log of this run id exists. */
  async has(run: string): Promise<boolean> {
    return (await this.fileInfo(this.pathOf(run))) !== undefined;
  }

  /** The state of a run's legacy log (always complete), or undefined when there is none. */
  async state(run: string): Promise<TaskLogState | undefined> {
    const path = this.pathOf(run);
    const info = await this.fileInfo(path);
    if (!info) return undefined;
    const identity = `${path}\0${info.mtimeMs}\0${info.size}`;
    let known = this.lengths.get(identity);
    if (!known) {
      known = { length: 0, records: 0 };
      for await (const record of this.records(path, info.mtimeMs)) {
        known.length += record.length;
        known.records++;
      }
      this.lengths.set(identity, known);
      if (this.lengths.size > LENGTH_CACHE) this.lengths.delete(this.lengths.keys().next().value as string);
    }
    const endedAt = info.mtimeMs;
    return {
      seq: 0,
      length: known.length,
      records: known.records,
      startedAt: endedAt,
      completion: { result: "succeeded", exitCode: 0, signal: "", endedAt },
    };
  }

  /** Whole records from `offset` up to `end`, about `maxBytes` (at least one record). */
  async read(run: string, offset: number, end: number, maxBytes: number): Promise<LogSlice> {
    const path = this.pathOf(run);
    const info = await stat(path);
    const parts: Buffer[] = [];
    let position = 0;
    let start = -1;
    let total = 0;
    for await (const record of this.records(path, info.mtimeMs)) {
      if (position >= end) break;
      if (position >= offset) {
        if (start < 0) start = position;
        if (total > 0 && total + record.length > maxBytes) break;
        parts.push(record);
        total += record.length;
      }
      position += record.length;
    }
    if (start < 0) return { offset: end, data: Buffer.alloc(0) };
    return { offset: start, data: Buffer.concat(parts, total) };
  }

  private async fileInfo(path: string): Promise<Stats | undefined> {
    const info = await stat(path).catch(() => undefined);
    return info?.isFile() ? info : undefined;
  }

  /** The file's lines as canonical records of the run log (CRLF or LF; a last line without newline counts). */
  private async *records(path: string, mtimeMs: number): AsyncGenerator<Buffer> {
    const ts = Math.floor(mtimeMs);
    const toRecord = (line: Buffer) => {
      const text = line.length > 0 && line[line.length - 1] === CR ? line.subarray(0, -1) : line;
      return Buffer.from(encodeRecord(ts, "stdout", RUN_LOG_TASK, decodeLine(text, this.maxLineBytes).line));
    };
    let carry = Buffer.alloc(0);
    for await (const piece of createReadStream(path, { highWaterMark: 256 * 1024 })) {
      let data = carry.length > 0 ? Buffer.concat([carry, piece as Buffer]) : (piece as Buffer);
      let nl = data.indexOf(NEWLINE);
      while (nl >= 0) {
        yield toRecord(data.subarray(0, nl));
        data = data.subarray(nl + 1);
        nl = data.indexOf(NEWLINE);
      }
      carry = Buffer.from(data);
    }
    if (carry.length > 0) yield toRecord(carry);
  }
}
