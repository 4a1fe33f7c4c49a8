/**
 * Identifier rules shared by the leader (which enforces them) and the worker and
 * CLI (which check early so a person gets the message before any network call).
 *
 * Identifiers end up in storage keys and, later, archive object keys and file
 * paths, so the charset is deliberately narrow: no separators, no `..`, no
 * control characters.
 */

export const MAX_ID_LENGTH = 128;

/** The run log: lifecycle records written by the leader, lines pushed by the run's driver. */
export const RUN_LOG_TASK = "_run";
/** Server events: leader-side problems of a run; only the leader writes here. */
export const SERVER_EVENTS_TASK = "_server";

const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export type IdField = "workspace" | "workflow" | "run_id" | "task";

/** Returns why `value` is not a valid identifier for `field`, or undefined when it is. */
export function identifierProblem(field: IdField, value: string): string | undefined {
  if (value.length === 0) return `${field} is empty`;
  if (value.length > MAX_ID_LENGTH) {
    return `${field} is ${value.length} characters long; the limit is ${MAX_ID_LENGTH}`;
  }
  if (field === "task" && (value === RUN_LOG_TASK || value === SERVER_EVENTS_TASK)) return undefined;
  if (value.includes("..")) return `${field} ${JSON.stringify(value)} contains ".."`;
  if (!ID_PATTERN.test(value)) {
    return `${field} ${JSON.stringify(value)} may only contain A-Z a-z 0-9 . _ - and must start with a letter or digit`;
  }
  return undefined;
}

export function isReservedTask(task: string): boolean {
  return task === RUN_LOG_TASK || task === SERVER_EVENTS_TASK;
}
