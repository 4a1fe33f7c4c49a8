import type { LogStore } from "../store/log-store.js";
import type { TaskLogState } from "../store/task-log-state.js";
import type { CommitQueue } from "./commit-queue.js";
import { splitTaskKey, type TaskKey, type TaskRegistry } from "./task-registry.js";

/**
 * The dropped range must have room for the marker record a read of it gets in
 * its place (dropped-marker.ts), which is shorter than this.
 */
export const MIN_DROP_BYTES = 1024;

export interface TaskSizeCapOptions {
  store: LogStore;
  registry: TaskRegistry;
  queue: CommitQueue;
  /** `retention.max_task_bytes`. */
  maxTaskBytes: number;
  log: (message: string, err?: unknown) => void;
}

/**
 * The per-task size cap. After a commit leaves a task log longer than the cap
 * by a sixteenth of it, the oldest whole chunks are dropped until what is kept
 * fits the cap (the newest chunk always stays). The slack batches the drops:
 * each is a range tombstone in RocksDB, and one per commit would pile them up: the state first records where the retained log begins, then one
 * range delete removes the chunks before it. Offsets never move. Runs after the
 * commit, off the ingest path, one task at a time; a task that grows meanwhile
 * is looked at again.
 */
export class TaskSizeCap {
  private readonly due = new Set<TaskKey>();
  private running: Promise<void> | undefined;

  private readonly trimAbove: number;

  constructor(private readonly o: TaskSizeCapOptions) {
    this.trimAbove = o.maxTaskBytes + Math.floor(o.maxTaskBytes / 16);
  }

  /** The commit queue's listener: notes tasks over the cap. */
  committed(states: ReadonlyMap<TaskKey, TaskLogState>): void {
    for (const [key, state] of states) if (this.trimDue(state)) this.due.add(key);
    if (this.due.size > 0) this.running ??= this.drain();
  }

  /** True when a log in this state is over the cap and about to lose its oldest chunks. */
  trimDue(state: TaskLogState): boolean {
    return !state.archived && state.length - (state.retainedFrom ?? 0) > this.trimAbove;
  }

  /** Resolves once no task is waiting to be trimmed. */
  async idle(): Promise<void> {
    for (let i = 0; i < 1000 && this.running; i++) await this.running;
  }

  private async drain(): Promise<void> {
    try {
      for (let key = first(this.due); key !== undefined; key = first(this.due)) {
        this.due.delete(key);
        try {
          await this.trim(key);
        } catch (err) {
          this.o.log(`dropping the oldest chunks of ${splitTaskKey(key).task} (per-task size cap) failed; retried on its next commit`, err);
        }
      }
    } finally {
      this.running = undefined;
    }
  }

  private async trim(key: TaskKey): Promise<void> {
    const { run, task } = splitTaskKey(key);
    const { store, registry, queue, maxTaskBytes } = this.o;
    const state = await registry.load(key);
    if (!state || state.archived) return;
    const from = await store.chunkStartFrom(run, task, state.length - maxTaskBytes);
    const before = state.retainedFrom ?? 0;
    if (from !== undefined && from > before && from >= MIN_DROP_BYTES) {
      // `records` counts what a reader sees — the marker and the retained records — so line numbers stay consistent.
      const dropped = await countRecords(store, run, task, before, from);
      // The state moves first: a crash before the range delete leaves chunks nobody reads, dropped on the next trim.
      await queue.run([key], (ctx) => {
        const current = ctx.state(key);
        if (!current || current.archived || (current.retainedFrom ?? 0) !== before) return;
        const records = current.records - dropped + (before === 0 ? 1 : 0);
        ctx.setState(key, { ...current, retainedFrom: from, records });
      });
    }
    const retained = (await registry.load(key))?.retainedFrom;
    if (retained !== undefined) await store.dropChunksBefore(run, task, retained);
  }
}

/** Records in [from, end) of a task log, read from the store (a trim drops about what was appended since the last one). */
async function countRecords(store: LogStore, run: string, task: string, from: number, end: number): Promise<number> {
  let count = 0;
  for (let offset = from, guard = 0; offset < end && guard < 1_000_000; guard++) {
    const slice = await store.read(run, task, offset, end, 4 * 1024 * 1024);
    if (slice.data.length === 0) break;
    for (let at = slice.data.indexOf(0x0a); at >= 0; at = slice.data.indexOf(0x0a, at + 1)) count++;
    offset = slice.offset + slice.data.length;
  }
  return count;
}

function first<T>(set: Set<T>): T | undefined {
  return set.values().next().value;
}
