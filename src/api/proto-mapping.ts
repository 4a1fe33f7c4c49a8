import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Result, type Run, RunSchema, RunState, Stream, type Task, TaskSchema, TaskState } from "../../gen/joblog/v1/log_pb.js";
import type { StreamName } from "../ingest/record-encoder.js";
import type { TaskView } from "../runs/run-directory.js";
import type { RunRecord, RunResult } from "../store/meta-store.js";

/** Conversions between the proto contract and the leader's own records. */

export function resultToProto(result: RunResult | undefined): Result {
  if (result === "succeeded") return Result.SUCCEEDED;
  if (result === "failed") return Result.FAILED;
  return Result.UNSPECIFIED;
}

export function resultFromProto(result: Result): RunResult | undefined {
  if (result === Result.SUCCEEDED) return "succeeded";
  if (result === Result.FAILED) return "failed";
  return undefined;
}

export function streamFromProto(stream: Stream): StreamName {
  return stream === Stream.STDERR ? "stderr" : "stdout";
}

export function runStateFromProto(state: RunState): RunRecord["state"] | undefined {
  if (state === RunState.RUNNING) return "running";
  if (state === RunState.COMPLETED) return "completed";
  return undefined;
}

export function runToProto(run: RunRecord): Run {
  return create(RunSchema, {
    runId: run.runId,
    workspace: run.workspace,
    workflow: run.workflow,
    state: run.state === "completed" ? RunState.COMPLETED : RunState.RUNNING,
    result: resultToProto(run.result),
    startedAt: timestampFromMs(run.startedAt),
    ...(run.endedAt === undefined ? {} : { endedAt: timestampFromMs(run.endedAt) }),
    taskCount: run.taskCount,
  });
}

export function taskToProto(view: TaskView): Task {
  const state = view.state;
  const completion = state?.completion;
  return create(TaskSchema, {
    name: view.name,
    state: completion ? TaskState.COMPLETED : TaskState.RUNNING,
    result: resultToProto(completion?.result),
    exitCode: completion?.exitCode ?? 0,
    signal: completion?.signal ?? "",
    length: BigInt(state?.length ?? 0),
    recordCount: BigInt(state?.records ?? 0),
    ...(state ? { startedAt: timestampFromMs(state.startedAt) } : {}),
    ...(completion ? { endedAt: timestampFromMs(completion.endedAt) } : {}),
  });
}
