/**
 * Failures the leader's core reports, each with the kind a caller can act on.
 * Only the RPC edge turns them into gRPC codes (api/error-mapping.ts), so the
 * core stays free of transport concerns.
 */
export type DomainErrorKind =
  | "invalid_argument"
  | "not_found"
  | "already_exists"
  | "failed_precondition"
  | "permission_denied"
  | "resource_exhausted"
  | "unavailable"
  | "data_loss";

export class DomainError extends Error {
  override name = "DomainError";
  constructor(
    readonly kind: DomainErrorKind,
    message: string,
  ) {
    super(message);
  }
}

export const invalidArgument = (message: string) => new DomainError("invalid_argument", message);
export const notFound = (message: string) => new DomainError("not_found", message);
export const alreadyExists = (message: string) => new DomainError("already_exists", message);
export const failedPrecondition = (message: string) => new DomainError("failed_precondition", message);
export const permissionDenied = (message: string) => new DomainError("permission_denied", message);
export const resourceExhausted = (message: string) => new DomainError("resource_exhausted", message);
export const unavailable = (message: string) => new DomainError("unavailable", message);
export const dataLoss = (message: string) => new DomainError("data_loss", message);
