import { Code, ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus } from "@connectrpc/connect/protocol-connect";
import { DomainError, type DomainErrorKind } from "../errors/domain-error.js";

const CODES: Record<DomainErrorKind, Code> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  permission_denied: Code.PermissionDenied,
  resource_exhausted: Code.ResourceExhausted,
  unavailable: Code.Unavailable,
  data_loss: Code.DataLoss,
};

export type ErrorLogger = (message: string, err: unknown) => void;

/**
 * The one place that turns failures into RPC errors. Domain errors keep their
 * message; transport errors pass through; anything else is logged with detail
 * and sent as a bare INTERNAL, never with a stack or a path.
 */
export function toConnectError(err: unknown, log: ErrorLogger): ConnectError {
  if (err instanceof DomainError) return new ConnectError(err.message, CODES[err.kind]);
  if (err instanceof ConnectError) {
    if (err.code === Code.ResourceExhausted && err.rawMessage.includes("readMaxBytes")) {
      return new ConnectError(
        `${err.rawMessage.replace("configured readMaxBytes", "limit")} (limits.max_message_bytes)`,
        Code.ResourceExhausted,
      );
    }
    return err;
  }
  if (isStorageFull(err)) return new ConnectError("the leader's disk is full; retry later", Code.ResourceExhausted);
  // A client that resets its stream mid-request: its going away is not a fault of the leader's.
  if (isClientGone(err)) return new ConnectError("the client closed the stream before it ended", Code.Canceled);
  log("internal error", err);
  return new ConnectError("internal error", Code.Internal);
}

function isClientGone(err: unknown): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === "ERR_STREAM_PREMATURE_CLOSE";
}

function isStorageFull(err: unknown): boolean {
  return err instanceof Error && /No space left on device|ENOSPC/i.test(err.message);
}

/** The same mapping for plain HTTP routes: the status Connect gives the code, and the message. */
export function toHttpError(err: unknown, log: ErrorLogger): { status: number; message: string } {
  const connectError = toConnectError(err, log);
  return { status: codeToHttpStatus(connectError.code), message: connectError.rawMessage };
}
