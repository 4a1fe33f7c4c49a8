import type { SealingKey } from "../crypto/chunk-cipher.js";
import type { KvOp, KvStore } from "../store/kv-store.js";
import type { LogStore } from "../store/log-store.js";
import type { TaskLogState } from "../store/task-log-state.js";
import { splitAtRecords } from "./record-encoder.js";
import { splitTaskKey, type TaskKey, type TaskRegistry } from "./task-registry.js";

/** Bytes appended to one task by a commit, announced to tails once durable. */
export interface CommittedAppend {
  key: TaskKey;
  offset: number;
  data: Buffer;
}

/** What a job sees while its group is being built: states as they will be once the group is durable. */
export interface CommitContext {
  /** The task's state including earlier jobs of this group; undefined when the task has no log yet. */
  state(key: TaskKey): TaskLogState | undefined;
  /** Replaces the task's state; written with the group. */
  setState(key: TaskKey, state: TaskLogState): void;
  /** Appends whole JSONL records at the task's current length; returns the new state. */
  append(key: TaskKey, jsonl: Buffer, records: number): TaskLogState;
}

/**
 * A job validates first and only then changes the context: when it throws, the
 * context is rolled back to where it was before the job, and the job alone fails.
 */
export type CommitJob<T> = (ctx: CommitContext) => T;

interface Pending {
  job: CommitJob<unknown>;
  /** Data keys of the runs the job touches, made ready before it was queued. */
  keys: Array<[string, SealingKey]>;
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

export interface CommitQueueOptions {
  sync: boolean;
  chunkBytes: number;
  /** Called after each durable group, in commit order. */
  onCommitted(appends: CommittedAppend[], states: Map<TaskKey, TaskLogState>): void;
  /** Where a failing listener is reported. */
  warn?: (message: string, err: unknown) => void;
}

/**
 * Group commit for the log store. Jobs from every Push stream, and the leader's
 * own records, queue here; each round builds one RocksDB write batch from all of
 * them, in arrival order, holding lines and high-water marks together, and
 * acknowledges them only after the batch is written. One round runs at a time,
 * which is what lets a job read the offsets earlier jobs assigned.
 */
export class CommitQueue {
  private pending: Pending[] = [];
  private scheduled = false;
  private idleWaiters: Array<() => void> = [];
  /** Calls waiting for a task's state or a run's key before they queue. */
  private preparing = 0;

  constructor(
    private readonly kv: KvStore,
    private readonly store: LogStore,
    private readonly registry: TaskRegistry,
    private readonly options: CommitQueueOptions,
  ) {}

  /**
   * Runs `job` in the next group, after loading the states of `keys` (every task
   * the job touches); resolves with its result once the group is durable. Calls
   * for the same task keep their order.
   */
  run<T>(keys: readonly TaskKey[], job: CommitJob<T>): Promise<T> {
    // The common case, a batch of a task whose state and run key are at hand, queues without
    // awaiting anything: with 1,000 streams of small batches the promises of the slow path
    // were the largest share of the leader's allocation.
    // Only while no call is still preparing: one that is could be for the same task, and a
    // batch must not overtake an earlier one of its stream.
    const [only] = keys;
    if (this.preparing === 0 && keys.length === 1 && only !== undefined && this.registry.peek(only) !== undefined) {
      const run = splitTaskKey(only).run;
      const ready = this.store.keys.readyToWrite?.(run);
      if (ready) return this.enqueue(job, [[run, ready]]);
    }
    return this.prepareAndRun(keys, job);
  }

  private async prepareAndRun<T>(keys: readonly TaskKey[], job: CommitJob<T>): Promise<T> {
    this.preparing++;
    let sealing: Array<[string, SealingKey]>;
    try {
      if (keys.some((key) => this.registry.peek(key) === undefined)) await Promise.all(keys.map((key) => this.registry.load(key)));
      // Fetching a data key may wait for the key provider: before queueing, so it never holds up a group.
      const runs = new Set(keys.map((key) => splitTaskKey(key).run));
      sealing = await Promise.all([...runs].map(async (run) => [run, await this.store.keys.prepareWrite(run)] as [string, SealingKey]));
    } finally {
      this.preparing--;
    }
    return this.enqueue(job, sealing);
  }

  private enqueue<T>(job: CommitJob<T>, sealing: Array<[string, SealingKey]>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ job, keys: sealing, resolve: resolve as (value: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        // setImmediate lets every stream whose data arrived in this I/O phase join the group.
        setImmediate(() => void this.flush());
      }
    });
  }

  private async flush(): Promise<void> {
    const jobs = this.pending;
    this.pending = [];
    const sealing = new Map(jobs.flatMap((j) => j.keys));
    const states = new Map<TaskKey, TaskLogState>();
    const chunks: Array<{ run: string; task: string; offset: number; data: Buffer }> = [];
    const appends: CommittedAppend[] = [];
    // What the running job changed, to put back if it throws: O(what it touched), not O(group).
    let undo: Array<[TaskKey, TaskLogState | undefined]> = [];
    const setState = (key: TaskKey, state: TaskLogState) => {
      undo.push([key, states.get(key)]);
      states.set(key, state);
    };
    const ctx: CommitContext = {
      state: (key) => states.get(key) ?? this.registry.peek(key),
      setState,
      append: (key, jsonl, records) => {
        const before = states.get(key) ?? this.registry.peek(key);
        if (!before) throw new Error(`task log ${JSON.stringify(key)} was appended to before it was created`);
        const { run, task } = splitTaskKey(key);
        let offset = before.length;
        for (const piece of splitAtRecords(jsonl, this.options.chunkBytes)) {
          chunks.push({ run, task, offset, data: piece });
          appends.push({ key, offset, data: piece });
          offset += piece.length;
        }
        const after = { ...before, length: offset, records: before.records + records };
        setState(key, after);
        return after;
      },
    };

    const outcomes: Array<{ ok: true; value: unknown } | { ok: false; error: unknown }> = [];
    for (const { job } of jobs) {
      const chunksLength = chunks.length;
      const appendsLength = appends.length;
      undo = [];
      try {
        outcomes.push({ ok: true, value: job(ctx) });
      } catch (error) {
        chunks.length = chunksLength;
        appends.length = appendsLength;
        for (const [key, previous] of undo.reverse()) {
          if (previous === undefined) states.delete(key);
          else states.set(key, previous);
        }
        outcomes.push({ ok: false, error });
      }
    }
    let writeError: unknown;
    try {
      // Compression and encryption run off the event loop, all chunks of the group at once.
      const ops: KvOp[] = await this.store.sealChunks(
        chunks.map((c) => {
          const key = sealing.get(c.run);
          if (!key) throw new Error(`a job appended to run ${c.run} without naming one of its tasks`);
          return { ...c, key };
        }),
      );
      // Chunks only ever go to new offsets, so undoing a group is deleting its chunks and
      // putting back the states the registry holds (what is durable).
      const undo: KvOp[] = ops.map((op) => ({ type: "del", key: op.key }));
      // What the group adds to the disk, for the free-space floor: its sealed chunks.
      let newBytes = 0;
      for (const op of ops) if (op.type === "put") newBytes += op.key.length + op.value.length;
      for (const [key, state] of states) {
        const { run, task } = splitTaskKey(key);
        ops.push(this.store.stateOp(run, task, state));
        undo.push(this.store.restoreStateOp(run, task, this.registry.peek(key)));
      }
      await this.kv.write(ops, this.options.sync, { undo, newBytes });
    } catch (err) {
      writeError = err;
    }

    if (writeError === undefined) {
      for (const [key, state] of states) this.registry.commit(key, state);
      try {
        this.options.onCommitted(appends, states);
      } catch (err) {
        // Listeners must not undo an acknowledged write; report and go on.
        this.options.warn?.("commit listener failed", err);
      }
    }
    for (const [i, { resolve, reject }] of jobs.entries()) {
      const outcome = outcomes[i];
      if (writeError !== undefined) reject(writeError);
      else if (outcome?.ok) resolve(outcome.value);
      else reject(outcome?.error);
    }

    if (this.pending.length > 0) setImmediate(() => void this.flush());
    else {
      this.scheduled = false;
      for (const wake of this.idleWaiters.splice(0)) wake();
    }
  }

  /** Resolves once nothing is queued or being written. */
  idle(): Promise<void> {
    if (!this.scheduled) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}
