import { invalidArgument, unavailable } from "../errors/domain-error.js";
import type { LogRead, LogReader } from "../read/log-reader.js";
import type { TailHub } from "./tail-hub.js";

export interface TailOptions {
  run: string;
  task: string;
  offset: number;
  maxBytes: number;
  /** The caller went away. */
  signal: AbortSignal;
  /** The leader is shutting down. */
  shutdown: AbortSignal;
}

/**
 * A task log from an offset: what is stored, then each commit as it lands, in
 * order and exactly once, ending after the last record of a completed task with
 * a message whose `complete` is true. The loop reads rather than being fed, so a
 * consumer that stops pulling (a slow client) holds nothing and slows no one.
 */
export async function* tailLog(reader: LogReader, hub: TailHub, options: TailOptions): AsyncGenerator<LogRead> {
  const { run, task, signal, shutdown } = options;
  const first = await reader.state(run, task);
  if (options.offset > first.state.length) {
    throw invalidArgument(`offset ${options.offset} is past the end of task ${task} of run ${run} (length ${first.state.length})`);
  }
  const unsubscribe = hub.subscribe(first.key);
  const stop = AbortSignal.any([signal, shutdown]);
  try {
    let offset = options.offset;
    let state = first.state;
    for (;;) {
      if (shutdown.aborted) throw unavailable(`the leader is shutting down; resume the tail from offset ${offset}`);
      if (signal.aborted) return;
      if (offset < state.length) {
        const chunk = await reader.readAt({ ...first, state }, offset, options.maxBytes);
        offset = chunk.nextOffset;
        if (chunk.data.length > 0) yield { ...chunk, complete: false };
      } else if (state.completion) {
        yield { offset, data: Buffer.alloc(0), nextOffset: offset, length: state.length, complete: true };
        return;
      } else {
        // Subscribe-then-check: a commit landing between the check and the wait still wakes us.
        const changed = hub.changed(first.key, stop);
        // From the registry's memory when it has the task: no read, no promise (twice a turn, per subscriber).
        const latest = reader.cachedState(first) ?? (await reader.state(run, task)).state;
        if (latest !== state) {
          state = latest;
          continue;
        }
        await changed;
      }
      state = reader.cachedState(first) ?? (await reader.state(run, task)).state;
    }
  } finally {
    unsubscribe();
  }
}
