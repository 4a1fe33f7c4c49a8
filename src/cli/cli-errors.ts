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
      // grpc-js wraps the socket error in "No connection established. Last error: … Resolution note: …".
      const socketError = /(connect \w+ [^\s.]+(?:\.\d+)*:\d+|getaddrinfo \w+ \S+|Name resolution failed for target \S+)/.exec(
        details,
      )?.[1];
      if (socketError || details.startsWith("No connection established")) {
        return `cannot reach the leader${leader ? ` at ${leader}` : ""} (${socketError ?? "no connection"}); is it running? Set --leader or JOBLOG_LEADER`;
      }
      return `the leader${leader ? ` at ${leader}` : ""} is unavailable: ${details || "try again"}`;
    }
    if (code === status.DEADLINE_EXCEEDED) return `the leader${leader ? ` at ${leader}` : ""} did not answer in time`;
    return `${status[code]}: ${details}`;
  }
  if (err instanceof CliError || err instanceof ConfigError) return err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}
