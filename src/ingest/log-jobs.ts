import { failedPrecondition, invalidArgument } from "../errors/domain-error.js";
import { emptyTaskLogState, type TaskCompletionState, type TaskLogState } from "../store/task-log-state.js";
import type { CommitContext } from "./commit-queue.js";
import { afterRecords, type EncodedBatch, encodeRecord, type StreamName } from "./record-encoder.js";
import { splitTaskKey, type TaskKey } from "./task-registry.js";

/**
 * The writes the leader makes to task logs, as commit jobs: each validates, then
 * changes the context, so a refused batch leaves nothing behind. Jobs compose —
 * a task's completion and its `_run` record go into one atomic write.
 */

/** What a worker learns about a task log after a write. */
export interface LogProgress {
  durableSeq: number;
  length: number;
  completed: boolean;
}

export function progressOf(state: TaskLogState | undefined): LogProgress {
  return { durableSeq: state?.seq ?? 0, length: state?.length ?? 0, completed: state?.completion !== undefined };
}

function describe(key: TaskKey): string {
  const { run, task } = splitTaskKey(key);
  return `task ${task} of run ${run}`;
}

function requireState(ctx: CommitContext, key: TaskKey): TaskLogState {
  const state = ctx.state(key);
  if (!state) throw failedPrecondition(`${describe(key)} has no log; open it first`);
  return state;
}

/** Creates an empty log for the task unless it has one. */
export function createLog(ctx: CommitContext, key: TaskKey, now: number): TaskLogState {
  const existing = ctx.state(key);
  if (existing) return existing;
  const state = emptyTaskLogState(now);
  ctx.setState(key, state);
  return state;
}

/**
 * Appends the lines of a pushed batch. Lines at or below the high-water mark were
 * stored before (a resend after a reconnect) and are skipped; a batch that starts
 * past the next expected number would leave a hole and is refused whole.
 */
export function appendBatch(ctx: CommitContext, key: TaskKey, firstSeq: number, batch: EncodedBatch): LogProgress {
  const state = requireState(ctx, key);
  const lastSeq = firstSeq + batch.records - 1;
  if (state.completion) {
    if (lastSeq <= state.seq) return progressOf(state);
    throw failedPrecondition(`${describe(key)} is already completed; it takes no more lines`);
  }
  const expected = state.seq + 1;
  if (firstSeq > expected) {
    throw failedPrecondition(
      `batch.first_seq is ${firstSeq} but ${describe(key)} expects ${expected}: sequence numbers ${expected}..${firstSeq - 1} are missing`,
    );
  }
  const skip = expected - firstSeq;
  if (skip >= batch.records) return progressOf(state);
  const jsonl = skip === 0 ? batch.jsonl : batch.jsonl.subarray(afterRecords(batch.jsonl, skip));
  const after = ctx.append(key, jsonl, batch.records - skip);
  const next = { ...after, seq: lastSeq };
  ctx.setState(key, next);
  return progressOf(next);
}

/**
 * Appends records the leader writes itself (run log, server events): no sequence numbers.
 * `afterCompletion` lets the archive report trouble in a completed run's `_server`: its
 * archive is not final yet, and the final object will hold the event.
 */
export function appendLeaderRecords(
  ctx: CommitContext,
  key: TaskKey,
  records: ReadonlyArray<{ stream: StreamName; line: string }>,
  now: number,
  options: { afterCompletion?: boolean } = {},
): void {
  const state = requireState(ctx, key);
  if (state.archived) throw failedPrecondition(`${describe(key)} is archived`);
  if (state.completion && !options.afterCompletion) throw failedPrecondition(`${describe(key)} is already completed`);
  const { task } = splitTaskKey(key);
  const text = records.map((r) => encodeRecord(now, r.stream, task, r.line)).join("");
  ctx.append(key, Buffer.from(text, "utf8"), records.length);
}

/**
 * Completes a task log. Completing again with the same outcome succeeds (the
 * worker's acknowledgement may have been lost); with another outcome it is refused.
 */
export function completeLog(ctx: CommitContext, key: TaskKey, completion: TaskCompletionState): LogProgress {
  const state = requireState(ctx, key);
  if (state.completion) {
    const same = state.completion.result === completion.result && state.completion.exitCode === completion.exitCode;
    if (same) return progressOf(state);
    throw failedPrecondition(`${describe(key)} is already completed as ${state.completion.result}`);
  }
  if (completion.result !== "succeeded" && completion.result !== "failed") {
    throw invalidArgument("complete.result must be RESULT_SUCCEEDED or RESULT_FAILED");
  }
  const next = { ...state, completion };
  ctx.setState(key, next);
  return progressOf(next);
}
