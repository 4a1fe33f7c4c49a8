import { ChunkIntegrityError, type ChunkKeySource, chunkGeneration, type SealingKey } from "../crypto/chunk-cipher.js";
import type { CompressionSetting } from "../crypto/chunk-compression.js";
import type { ChunkThread } from "../crypto/chunk-thread.js";
import { dataLoss } from "../errors/domain-error.js";
import type { KvOp, KvRange, KvStore } from "./kv-store.js";
import { chunkKey, chunkOffset, chunkRange, taskStateKey } from "./log-keys.js";
import { OpenedChunks } from "./opened-chunks.js";
import { decodeTaskLogState, encodeTaskLogState, type TaskLogState } from "./task-log-state.js";

const NEWLINE = 0x0a;

/** A slice of a task log: whole records starting at `offset`. */
export interface LogSlice {
  offset: number;
  data: Buffer;
}

/** Chunks a read fetches and opens at once: 1 MiB, the default largest read, in one page. */
const READ_AHEAD = 16;
/** Chunks opened ahead for a sequential reader's next page while it handles this one. */
const PREFETCH_CHUNKS = 16;
/** Tasks whose last read end is remembered, to tell sequential readers from random ones. */
const SEQUENTIAL_READERS = 1024;

export interface LogStoreOptions {
  /** Bytes of recently opened chunks kept in memory for other readers and next pages; 0 turns it off. */
  openedChunkBytes?: number;
  /** Where reads open chunks; by default the sealing thread. */
  openThread?: ChunkThread;
}

/**
 * The job-log store: chunks of canonical JSONL, compressed and encrypted under
 * their run's data key, plus each task's state, in one RocksDB. Writes are built
 * as ops for the commit queue; reads seek.
 */
export class LogStore {
  private readonly opened: OpenedChunks;
  private readonly openThread: ChunkThread;
  /** Where each recent read of a task ended, by task: a read starting there is sequential. */
  private readonly readEnds = new Map<string, number>();

  constructor(
    readonly kv: KvStore,
    readonly keys: ChunkKeySource,
    private readonly compression: CompressionSetting,
    /** Where chunks are compressed and encrypted, off the event loop. */
    private readonly sealThread: ChunkThread,
    options: LogStoreOptions = {},
  ) {
    this.opened = new OpenedChunks(options.openedChunkBytes ?? 32 * 1024 * 1024);
    this.openThread = options.openThread ?? sealThread;
  }

  async loadState(run: string, task: string): Promise<TaskLogState | undefined> {
    const value = await this.kv.get(taskStateKey(run, task));
    return value === undefined ? undefined : decodeTaskLogState(value);
  }

  /** Puts for the chunks of a commit group, compressed and encrypted together on the sealing thread. */
  async sealChunks(chunks: ReadonlyArray<{ key: SealingKey; run: string; task: string; offset: number; data: Buffer }>): Promise<KvOp[]> {
    const jobs = chunks.map((c) => {
      const { generation, key } = c.key.take();
      return { storeKey: chunkKey(c.run, c.task, c.offset), plaintext: c.data, generation, dek: key };
    });
    const sealed = await this.sealThread.seal(this.compression, jobs);
    return jobs.map((job, i): KvOp => ({ type: "put", key: job.storeKey, value: sealed[i] as Buffer }));
  }

  stateOp(run: string, task: string, state: TaskLogState): KvOp {
    return { type: "put", key: taskStateKey(run, task), value: encodeTaskLogState(state) };
  }

  /** Puts a task's state back to `previous`, or removes it when the task had none. */
  restoreStateOp(run: string, task: string, previous: TaskLogState | undefined): KvOp {
    return previous ? this.stateOp(run, task, previous) : { type: "del", key: taskStateKey(run, task) };
  }

  /** Drops every chunk of a task (its buffer) with one range delete; the task's state stays. */
  async dropChunks(run: string, task: string): Promise<void> {
    const range = chunkRange(run, task);
    await this.kv.deleteRange(range.gte, range.lt);
  }

  /** Deletes task logs for good: every chunk (one range delete per task), then their states. */
  async deleteTasks(run: string, tasks: readonly string[], sync: boolean): Promise<void> {
    for (const task of tasks) {
      await this.dropChunks(run, task);
      this.opened.forgetPrefix(chunkRange(run, task).gte);
    }
    await this.kv.write(
      tasks.map((task): KvOp => ({ type: "del", key: taskStateKey(run, task) })),
      sync,
    );
  }

  /**
   * Where the task's log would begin if its chunks before `offset` were dropped:
   * the first chunk starting at or after `offset`, or else the last chunk (a log
   * always keeps its newest chunk). Undefined when the task has no chunks.
   */
  async chunkStartFrom(run: string, task: string, offset: number): Promise<number | undefined> {
    const range = chunkRange(run, task);
    const after = await this.kv.first({ gte: chunkKey(run, task, offset), lt: range.lt });
    const found = after ?? (await this.kv.first({ ...range, reverse: true }));
    return found === undefined ? undefined : chunkOffset(found[0]);
  }

  /** Drops a task's chunks that start before `offset` (one range delete); the rest stay. */
  async dropChunksBefore(run: string, task: string, offset: number): Promise<void> {
    await this.kv.deleteRange(chunkRange(run, task).gte, chunkKey(run, task, offset));
  }

  /**
   * Reads whole records from `offset` (moved forward to the next record start when
   * it falls inside one) up to `end`, stopping after `maxBytes` but returning at
   * least one record. Seeks to the chunk holding `offset`; never scans from 0.
   * A chunk that fails authentication ends the read before it; when it is the
   * first one, the read fails with DATA_LOSS naming it, and never returns its bytes.
   */
  async read(run: string, task: string, offset: number, end: number, maxBytes: number): Promise<LogSlice> {
    if (offset >= end) return { offset: end, data: Buffer.alloc(0) };
    const range = chunkRange(run, task);
    const floor = await this.kv.first({ gte: range.gte, lte: chunkKey(run, task, offset), reverse: true });
    const startKey = floor?.[0] ?? range.gte;

    const parts: Buffer[] = [];
    let start = -1;
    let total = 0;
    let lastChunk = -1;
    for await (const [chunkStart, opened] of this.openChunks(run, startKey, range.lt, end)) {
      lastChunk = chunkStart;
      let chunk: Buffer;
      try {
        chunk = await opened;
      } catch (err) {
        if (!(err instanceof ChunkIntegrityError)) throw err;
        if (start >= 0) break;
        const next = await this.kv.first({ gt: chunkKey(run, task, chunkStart), lt: range.lt });
        const resume = next ? Math.min(chunkOffset(next[0]), end) : end;
        throw dataLoss(
          `the chunk at offset ${chunkStart} of task ${task} in run ${run} failed authentication (${err.message}): it was altered or moved, so bytes ${chunkStart}..${resume} are not returned; the log reads on from offset ${resume}`,
        );
      }
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
    const readEnd = start + total;
    // The reader is walking the log: open its next page while it handles this one.
    if (this.isSequential(run, task, offset, readEnd) && readEnd < end && this.opened.enabled)
      this.prefetch(run, chunkKey(run, task, lastChunk), range.lt, end);
    return { offset: start, data: parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, total) };
  }

  /** Remembers where this read ended; true when it began at 0 or where the task's previous read ended. */
  private isSequential(run: string, task: string, offset: number, readEnd: number): boolean {
    const id = `${run}\0${task}`;
    const sequential = offset === 0 || this.readEnds.get(id) === offset;
    this.readEnds.delete(id);
    this.readEnds.set(id, readEnd);
    if (this.readEnds.size > SEQUENTIAL_READERS) this.readEnds.delete(this.readEnds.keys().next().value as string);
    return sequential;
  }

  /** Opens up to PREFETCH_CHUNKS chunks after `afterKey` into the shared cache; failures wait for a real read. */
  private prefetch(run: string, afterKey: Buffer, lt: Buffer, end: number): void {
    // After this turn of the event loop: the answer of the read that asked for it goes out first.
    setImmediate(() => {
      try {
        for (const [key, value] of this.kv.page({ gt: afterKey, lt }, PREFETCH_CHUNKS)) {
          if (chunkOffset(key) >= end) break;
          this.open(run, key, value).catch(() => {});
        }
      } catch {
        // The store closed meanwhile: nothing to open ahead.
      }
    });
  }

  private open(run: string, key: Buffer, value: Buffer): Promise<Buffer> {
    return this.opened.open(key, value, async () => {
      const dek = await this.keys.openingKey(run, chunkGeneration(value));
      return this.openThread.open(key, value, dek);
    });
  }

  /**
   * Chunk start offsets below `end`, each with its plaintext being opened, read a
   * page of READ_AHEAD at a time and opened together, so decompression overlaps. A
   * rejected open is handled by the consumer; the others are awaited or left to settle.
   */
  private async *openChunks(run: string, gte: Buffer, lt: Buffer, end: number): AsyncGenerator<[number, Promise<Buffer>]> {
    let range: KvRange = { gte, lt };
    for (;;) {
      const page = this.kv.page(range, READ_AHEAD);
      const ahead: Array<[number, Promise<Buffer>]> = [];
      let past = false;
      for (const [key, value] of page) {
        const chunkStart = chunkOffset(key);
        if (chunkStart >= end) {
          past = true;
          break;
        }
        const opening = this.open(run, key, value);
        opening.catch(() => {}); // observed by the consumer when it gets there
        ahead.push([chunkStart, opening]);
      }
      yield* ahead;
      const last = page.at(-1);
      if (past || page.length < READ_AHEAD || !last) return;
      range = { gt: last[0], lt };
    }
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
