import { Result, RunState, TaskState } from "../../../gen/joblog/v1/log_pb.js";

/** A run's or task's state and result in one word, with a colour that does not carry the meaning alone. */
export function StateBadge({ state, result }: { state: RunState | TaskState; result: Result }) {
  const running = state === RunState.RUNNING || state === TaskState.RUNNING;
  const word = running ? "running" : result === Result.SUCCEEDED ? "succeeded" : result === Result.FAILED ? "failed" : "completed";
  return <span className={`badge ${word}`}>{word}</span>;
}
