import { DomainError, unavailable } from "../errors/domain-error.js";
import { recordWindow } from "../read/record-window.js";
import type { LogSlice } from "../store/log-store.js";
import type { MetaStore } from "../store/meta-store.js";
import type { TaskLogState } from "../store/task-log-state.js";
import type { ArchiveBackend } from "./archive-backend.js";
import { runIndexKey, runKeyBase, runObjectKey } from "./archive-key.js";
import type { ArchiveLedger } from "./archive-ledger.js";
import { gunzipMembers, type MemberTable, membersFor } from "./gzip-members.js";
import { decodeRunIndex, type RunIndex, tableOf } from "./run-index.js";

/** Run indexes kept in memory: each is small, and a reader paging through a log asks for the same one again and again. */
const INDEX_CACHE_RUNS = 128;

/**
 * Reads task logs from the archive: from the run's object through its index once
 * the run is final, from the task's segments (located through the ledger) before.
 * Either way one ranged GET of the few gzip members that hold the offset asked for,
 * never the whole object.
 */
export class ArchiveTier {
  private readonly indexes = new Map<string, RunIndex>();

  constructor(
    private readonly backend: ArchiveBackend,
    private readonly ledger: ArchiveLedger,
    private readonly meta: MetaStore,
    private readonly prefix: string,
    private readonly log: (message: string, err?: unknown) => void,
  ) {}

  /** A task's state from the run's index, for a log the leader's store does not know; undefined when not archived. */
  async state(run: string, task: string): Promise<TaskLogState | undefined> {
    const base = await this.baseOf(run);
    if (base === undefined) return undefined;
    const entry = (await this.guard(run, task, () => this.index(run, base)))?.tasks.find((t) => t.task === task);
    if (!entry) return undefined;
    return {
      seq: 0,
      length: entry.length,
      records: entry.records,
      startedAt: entry.startedAt,
      ...(entry.completion && { completion: entry.completion }),
      ...(entry.retainedFrom !== undefined && { retainedFrom: entry.retainedFrom }),
      archived: true,
    };
  }

  /** Whole records from `offset` (up to `end`, about `maxBytes`), like LogStore.read. */
  async read(run: string, task: string, offset: number, end: number, maxBytes: number): Promise<LogSlice> {
    if (offset >= end) return { offset: end, data: Buffer.alloc(0) };
    return this.guard(run, task, async () => {
      // Twice at most: segments can be deleted between the ledger lookup and the GET, once the run's object is final.
      for (let attempt = 0; attempt < 2; attempt++) {
        const archived = await this.ledger.run(run);
        if (archived?.phase === "segments") {
          const segment = await this.ledger.segmentAt(run, task, offset);
          if (!segment) break;
          const slice = await this.readMembers(segment.key, segment.members, offset, maxBytes);
          if (slice) return slice;
          continue;
        }
        const base = archived?.base ?? (await this.baseOf(run));
        const entry = base === undefined ? undefined : (await this.index(run, base))?.tasks.find((t) => t.task === task);
        if (base === undefined || !entry) break;
        const slice = await this.readMembers(runObjectKey(base), tableOf(entry), offset, maxBytes);
        if (slice) return slice;
        this.indexes.delete(run);
      }
      throw new Error(`the archive holds no bytes at offset ${offset} of task ${task} of run ${run}`);
    });
  }

  /** Drops what is cached of a deleted run. */
  forget(run: string): void {
    this.indexes.delete(run);
  }

  private async readMembers(key: string, table: MemberTable, offset: number, maxBytes: number): Promise<LogSlice | undefined> {
    const { plainStart, gzStart, gzEnd } = membersFor(table, offset, maxBytes);
    const bytes = await this.backend.getRange(key, gzStart, gzEnd);
    if (bytes === undefined) return undefined;
    const plain = await gunzipMembers(bytes);
    return recordWindow(plain, plainStart, offset, maxBytes);
  }

  private async baseOf(run: string): Promise<string | undefined> {
    const archived = await this.ledger.run(run);
    if (archived) return archived.base;
    const record = await this.meta.getRun(run);
    return record ? runKeyBase(this.prefix, record) : undefined;
  }

  private async index(run: string, base: string): Promise<RunIndex | undefined> {
    const cached = this.indexes.get(run);
    if (cached !== undefined) {
      // Refresh its place: the map's order is the eviction order.
      this.indexes.delete(run);
      this.indexes.set(run, cached);
      return cached;
    }
    const key = runIndexKey(base);
    const bytes = await this.backend.get(key);
    const index = bytes === undefined ? undefined : decodeRunIndex(bytes, key);
    // A missing index is not cached: the run's object may be written any moment.
    if (index) this.indexes.set(run, index);
    if (this.indexes.size > INDEX_CACHE_RUNS) this.indexes.delete(this.indexes.keys().next().value as string);
    return index;
  }

  /** Archive failures reach callers as UNAVAILABLE (retryable), with the detail in the leader's log. */
  private async guard<T>(run: string, task: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof DomainError) throw err;
      this.log(`archive read of task ${task} of run ${run} failed`, err);
      throw unavailable(`task ${task} of run ${run} is in the archive, which cannot be read right now; retry later`);
    }
  }
}
