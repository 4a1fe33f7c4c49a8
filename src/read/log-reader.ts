import { invalidArgument, notFound } from "../errors/domain-error.js";
import { type TaskKey, type TaskRegistry, taskKey } from "../ingest/task-registry.js";
import type { RunDirectory } from "../runs/run-directory.js";
import type { LogStore } from "../store/log-store.js";
import type { TaskLogState } from "../store/task-log-state.js";
import type { TailHub } from "../tail/tail-hub.js";

export interface LogRead {
  offset: number;
  data: Buffer;
  nextOffset: number;
  length: number;
  complete: boolean;
}

/** Reads task logs at an offset: the hub's cache of recent bytes first, then the store. */
export class LogReader {
  constructor(
    private readonly registry: TaskRegistry,
    private readonly store: LogStore,
    private readonly directory: RunDirectory,
    private readonly hub: TailHub,
  ) {}

  /** The durable state of a task log; NOT_FOUND naming the run or the task when there is none. */
  async state(run: string, task: string): Promise<{ key: TaskKey; state: TaskLogState }> {
    const key = taskKey(run, task);
    const state = await this.registry.load(key);
    if (state) return { key, state };
    if (!(await this.directory.hasRun(run))) throw notFound(`run ${run} not found`);
    throw notFound(`task ${task} not found in run ${run}`);
  }

  async read(run: string, task: string, offset: number, maxBytes: number): Promise<LogRead> {
    const { key, state } = await this.state(run, task);
    return this.readAt(key, run, task, state, offset, maxBytes);
  }

  /** Reads from a known state, so a tail sees the length and completion that go with the bytes. */
  async readAt(key: TaskKey, run: string, task: string, state: TaskLogState, offset: number, maxBytes: number): Promise<LogRead> {
    if (offset > state.length) {
      throw invalidArgument(`offset ${offset} is past the end of task ${task} of run ${run} (length ${state.length})`);
    }
    const complete = state.completion !== undefined;
    const cached = this.hub.cached(key, offset, maxBytes);
    const slice = cached ? { offset, data: cached } : await this.store.read(run, task, offset, state.length, maxBytes);
    return { offset: slice.offset, data: slice.data, nextOffset: slice.offset + slice.data.length, length: state.length, complete };
  }
}
