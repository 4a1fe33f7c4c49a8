import { invalidArgument } from "../errors/domain-error.js";
import type { KvOp, KvStore } from "./kv-store.js";

/**
 * The metadata store: runs, which tasks each run has, and the indexes ListRuns
 * walks. A task's state (length, completion) lives in the log store, written
 * atomically with its lines; here a task is only its name and when it opened.
 */

export type RunResult = "succeeded" | "failed";

export interface RunRecord {
  runId: string;
  workspace: string;
  workflow: string;
  state: "running" | "completed";
  result?: RunResult;
  startedAt: number;
  endedAt?: number;
  taskCount: number;
}

export interface TaskRecord {
  name: string;
  openedAt: number;
  /** 0-based position in the order tasks were opened. */
  order: number;
}

export interface RunFilter {
  workspace?: string;
  workflow?: string;
  state?: RunRecord["state"];
}

export interface RunPage {
  runs: RunRecord[];
  /** Index key to continue after; undefined when the listing is done. */
  nextKey?: Buffer;
}

const RUN = "R";
const TASK = "T";
const OPEN = "O";
const BY_TIME = "I";
const BY_WORKSPACE = "W";
const BY_WORKFLOW = "F";
const SEP = "\0";
// Newest first in an ascending key order: store the distance from a far-future time.
const TIME_CEILING = 2 ** 48;

const key = (...parts: string[]): Buffer => Buffer.from(parts.join(""), "latin1");

function timeKey(startedAt: number): string {
  return (TIME_CEILING - startedAt).toString(16).padStart(12, "0");
}

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

function parse<T>(value: Buffer): T {
  return JSON.parse(value.toString("utf8")) as T;
}

/** Everything after `prefix`: the smallest key above all keys that start with it. */
function prefixEnd(prefix: Buffer): Buffer {
  return Buffer.concat([prefix, Buffer.from([0xff])]);
}

export class MetaStore {
  constructor(readonly kv: KvStore) {}

  async getRun(runId: string): Promise<RunRecord | undefined> {
    const value = await this.kv.get(key(RUN, runId));
    return value === undefined ? undefined : parse<RunRecord>(value);
  }

  /** Ops that create a run with its indexes. */
  createRunOps(run: RunRecord): KvOp[] {
    const t = timeKey(run.startedAt);
    const empty = Buffer.alloc(0);
    return [
      { type: "put", key: key(RUN, run.runId), value: json(run) },
      { type: "put", key: key(OPEN, run.runId), value: empty },
      { type: "put", key: key(BY_TIME, t, run.runId), value: empty },
      { type: "put", key: key(BY_WORKSPACE, run.workspace, SEP, t, run.runId), value: empty },
      { type: "put", key: key(BY_WORKFLOW, run.workspace, SEP, run.workflow, SEP, t, run.runId), value: empty },
    ];
  }

  updateRunOps(run: RunRecord): KvOp[] {
    const ops: KvOp[] = [{ type: "put", key: key(RUN, run.runId), value: json(run) }];
    if (run.state === "completed") ops.push({ type: "del", key: key(OPEN, run.runId) });
    return ops;
  }

  /** Ops that remove a run, its indexes and its task records. */
  deleteRunOps(run: RunRecord, tasks: readonly TaskRecord[]): KvOp[] {
    const t = timeKey(run.startedAt);
    return [
      { type: "del", key: key(RUN, run.runId) },
      { type: "del", key: key(OPEN, run.runId) },
      { type: "del", key: key(BY_TIME, t, run.runId) },
      { type: "del", key: key(BY_WORKSPACE, run.workspace, SEP, t, run.runId) },
      { type: "del", key: key(BY_WORKFLOW, run.workspace, SEP, run.workflow, SEP, t, run.runId) },
      ...tasks.map((task): KvOp => ({ type: "del", key: key(TASK, run.runId, SEP, task.name) })),
    ];
  }

  /** Up to `limit` runs in start order, oldest first: what a retention sweep walks. */
  async oldestRuns(limit: number): Promise<RunRecord[]> {
    const prefix = key(BY_TIME);
    const runs: RunRecord[] = [];
    // The time index stores distance from a far-future time: oldest runs have the largest keys.
    for await (const [indexKey] of this.kv.entries({ gt: prefix, lt: prefixEnd(prefix), reverse: true, limit }, Math.min(limit, 256))) {
      const run = await this.getRun(indexKey.toString("latin1", prefix.length + 12));
      if (run) runs.push(run);
    }
    return runs;
  }

  addTaskOp(runId: string, task: TaskRecord): KvOp {
    return { type: "put", key: key(TASK, runId, SEP, task.name), value: json(task) };
  }

  async write(ops: KvOp[], sync: boolean): Promise<void> {
    await this.kv.write(ops, sync);
  }

  async listTasks(runId: string): Promise<TaskRecord[]> {
    const gte = key(TASK, runId, SEP);
    const tasks: TaskRecord[] = [];
    for await (const [, value] of this.kv.entries({ gte, lt: prefixEnd(gte) })) tasks.push(parse<TaskRecord>(value));
    return tasks.sort((a, b) => a.order - b.order);
  }

  async openRunIds(): Promise<string[]> {
    const gte = key(OPEN);
    const ids: string[] = [];
    for await (const [k] of this.kv.entries({ gte, lt: prefixEnd(gte) }, 256)) ids.push(k.toString("latin1", 1));
    return ids;
  }

  /**
   * A page of runs, newest first. Walks the narrowest index the filter allows and
   * examines at most `scanLimit` index entries, so a rare filter returns a short
   * page with a continuation rather than scanning the whole store in one call.
   */
  async listRuns(filter: RunFilter, pageSize: number, after: Buffer | undefined, scanLimit = 10_000): Promise<RunPage> {
    const prefix =
      filter.workspace === undefined
        ? key(BY_TIME)
        : filter.workflow === undefined
          ? key(BY_WORKSPACE, filter.workspace, SEP)
          : key(BY_WORKFLOW, filter.workspace, SEP, filter.workflow, SEP);
    if (after && !after.subarray(0, prefix.length).equals(prefix)) {
      throw invalidArgument("page_token belongs to a listing with other filters; start again without it");
    }
    const range = { gt: after ?? prefix, lt: prefixEnd(prefix) };
    const runs: RunRecord[] = [];
    let scanned = 0;
    let lastKey: Buffer | undefined;
    for await (const [indexKey] of this.kv.entries(range, Math.min(pageSize + 1, 256))) {
      if (runs.length === pageSize || scanned === scanLimit) return { runs, nextKey: lastKey ?? after ?? prefix };
      scanned++;
      lastKey = indexKey;
      const runId = indexKey.toString("latin1", prefix.length + 12);
      const run = await this.getRun(runId);
      if (run === undefined) continue;
      if (filter.workflow !== undefined && run.workflow !== filter.workflow) continue;
      if (filter.state !== undefined && run.state !== filter.state) continue;
      runs.push(run);
    }
    return { runs };
  }
}
