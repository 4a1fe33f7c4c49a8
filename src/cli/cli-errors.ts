import { status } from "@grpc/grpc-js";
import { grpcCode } from "../client/leader-client.js";
import { ConfigError } from "../config/load-config.js";

/** A failure worth a one-line message and an exit code, never a stack trace. */
export class CliError extends Error {
  override name = "CliError";
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** One line a person can act on, for any error a command may meet. */
export function describeError(err: unknown, leader?: string): string {
  const code = grpcCode(err);
  if (code !== undefined) {
    const details = (err as { details?: string }).details ?? "";
    if (code === status.UNAVAILABLE) {
      return `cannot reach the leader${leader ? ` at ${leader}` : ""} (${details || "unavailable"}); is it running? Set --leader or JOBLOG_LEADER`;
    }
    if (code === status.DEADLINE_EXCEEDED) return `the leader${leader ? ` at ${leader}` : ""} did not answer in time`;
    return `${status[code]}: ${details}`;
  }
  if (err instanceof CliError || err instanceof ConfigError) return err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}
