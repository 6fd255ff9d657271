/**
 * The one error base of Strata. Every condition a caller is expected to handle is a subclass
 * with a stable string `code` (never a number: grpc-js reads a numeric `code` as a gRPC status).
 * The gRPC boundary (serve/status-mapping.ts) and the CLI (cli/exit-codes.ts) map codes, never
 * messages. Codes are listed in docs/errors.md, and a test keeps the two in step.
 */
export const ERROR_CODES = [
  "STRATA_CONFIG_INVALID",
  "STRATA_SEGMENT_CORRUPT",
  "STRATA_SEGMENT_UNSUPPORTED",
  "STRATA_RECORD_CORRUPT",
  "STRATA_MANIFEST_CORRUPT",
  "STRATA_TABLE_NOT_FOUND",
  "STRATA_VERSION_NOT_FOUND",
  "STRATA_NO_VERSION",
  "STRATA_NO_PREVIOUS_VERSION",
  "STRATA_TABLE_LOCKED",
  "STRATA_TABLE_PINNED",
  "STRATA_VERSION_ROLLED_BACK",
  "STRATA_IMPORT_INVALID",
  "STRATA_VALUE_INVALID",
  "STRATA_REQUEST_INVALID",
  "STRATA_REQUEST_TOO_LARGE",
  "STRATA_UNAUTHENTICATED",
  "STRATA_UNAVAILABLE",
  "STRATA_DELTA_INVALID",
  "STRATA_WRITER_FENCED",
  "STRATA_FLEET_INCOMPLETE",
  "STRATA_INVARIANT",
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export interface StrataErrorOptions extends ErrorOptions {
  /** True when the same call may succeed later (a lock held, a broker away). */
  retriable?: boolean;
}

export abstract class StrataError extends Error {
  abstract readonly code: ErrorCode;
  readonly retriable: boolean;

  constructor(message: string, options: StrataErrorOptions = {}) {
    super(message, options);
    this.retriable = options.retriable ?? false;
  }

  /** Derived, so a class name and its error name can never drift apart. */
  override get name(): string {
    return this.constructor.name;
  }
}

/** A bug in Strata, not in its input: "this should never happen". */
export class InvariantViolationError extends StrataError {
  readonly code = "STRATA_INVARIANT";
}

export class ConfigError extends StrataError {
  readonly code = "STRATA_CONFIG_INVALID";
}

/** A feature value that does not fit its declared type (import rows, deltas, requests). */
export class InvalidValueError extends StrataError {
  readonly code = "STRATA_VALUE_INVALID";
  constructor(
    message: string,
    readonly feature?: string,
  ) {
    super(message);
  }
}

/** A service Strata needs (a server, Kafka, Redis) cannot be reached. */
export class UnavailableError extends StrataError {
  readonly code = "STRATA_UNAVAILABLE";
  constructor(message: string, options: ErrorOptions = {}) {
    super(message, { ...options, retriable: true });
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
