/**
 * Domain errors → gRPC status: the only place that knows both vocabularies. Anything that is not
 * a StrataError is a bug: INTERNAL, with the details scrubbed (they go to the log).
 */
import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { ERROR_CODES, StrataError, type ErrorCode } from "../shared/errors.js";

/**
 * The trailer that carries a failed call's Strata error code next to its gRPC status, so that a
 * client can tell what the status alone cannot (an unknown table from a table with nothing
 * published, say); `strata get --server` exits with the same code as `--local` from it.
 */
export const ERROR_CODE_TRAILER = "strata-error-code";

const BY_CODE: Record<ErrorCode, status> = {
  STRATA_CONFIG_INVALID: status.FAILED_PRECONDITION,
  STRATA_SEGMENT_CORRUPT: status.DATA_LOSS,
  STRATA_SEGMENT_UNSUPPORTED: status.DATA_LOSS,
  STRATA_RECORD_CORRUPT: status.DATA_LOSS,
  STRATA_MANIFEST_CORRUPT: status.DATA_LOSS,
  STRATA_TABLE_NOT_FOUND: status.NOT_FOUND,
  STRATA_VERSION_NOT_FOUND: status.NOT_FOUND,
  STRATA_NO_VERSION: status.UNAVAILABLE,
  STRATA_NO_PREVIOUS_VERSION: status.FAILED_PRECONDITION,
  STRATA_TABLE_LOCKED: status.UNAVAILABLE,
  STRATA_TABLE_PINNED: status.FAILED_PRECONDITION,
  STRATA_VERSION_ROLLED_BACK: status.FAILED_PRECONDITION,
  STRATA_IMPORT_INVALID: status.INVALID_ARGUMENT,
  STRATA_SCHEMA_MISMATCH: status.FAILED_PRECONDITION,
  STRATA_VALUE_INVALID: status.INVALID_ARGUMENT,
  STRATA_REQUEST_INVALID: status.INVALID_ARGUMENT,
  STRATA_REQUEST_TOO_LARGE: status.RESOURCE_EXHAUSTED,
  STRATA_UNAUTHENTICATED: status.UNAUTHENTICATED,
  STRATA_UNAVAILABLE: status.UNAVAILABLE,
  STRATA_DELTA_INVALID: status.INVALID_ARGUMENT,
  STRATA_WRITER_FENCED: status.FAILED_PRECONDITION,
  STRATA_FLEET_INCOMPLETE: status.DEADLINE_EXCEEDED,
  STRATA_SYSTEM: status.INTERNAL,
  STRATA_INVARIANT: status.INTERNAL,
  STRATA_USAGE: status.INVALID_ARGUMENT,
};

export interface GrpcStatus {
  code: status;
  details: string;
}

export function toGrpcStatus(err: unknown): GrpcStatus {
  if (err instanceof StrataError) return { code: BY_CODE[err.code], details: boundedDetails(err.message) };
  return { code: status.INTERNAL, details: "Internal error (see the server log)" };
}

/**
 * Details go out in a trailer (grpc-message, percent-encoded), and a message that quotes a
 * client's 100 KB table name back overflowed the HTTP/2 header list: the status never arrived
 * and the connection stalled. Cut to a size every peer takes.
 */
const MAX_DETAILS_CHARS = 1024;
function boundedDetails(message: string): string {
  return message.length <= MAX_DETAILS_CHARS ? message : `${message.slice(0, MAX_DETAILS_CHARS)}… (cut)`;
}

/** What a handler fails a call with: status, details and the error code trailer. */
export function toServiceError(err: unknown): Partial<ServiceError> & { code: status; details: string } {
  const s = toGrpcStatus(err);
  const metadata = new Metadata();
  if (err instanceof StrataError) metadata.set(ERROR_CODE_TRAILER, err.code);
  return { code: s.code, details: s.details, message: s.details, metadata };
}

/** The Strata error code a failed call's trailers carry (see ERROR_CODE_TRAILER), if any. */
export function errorCodeOfCall(err: { metadata?: Metadata }): ErrorCode | null {
  const value = err.metadata?.get(ERROR_CODE_TRAILER)[0];
  return (ERROR_CODES as readonly unknown[]).includes(value) ? (value as ErrorCode) : null;
}
