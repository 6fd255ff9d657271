/**
 * The one error base of Strata. Every condition a caller is expected to handle is a subclass
 * with a stable string `code` (never a number: grpc-js reads a numeric `code` as a gRPC status).
 * The gRPC boundary (serve/status-mapping.ts) and the CLI (cli/exit-codes.ts) map codes, never
 * messages. Codes are listed in docs/errors.md, and a test keeps the two in step.
 */
import { getSystemErrorMap } from "node:util";

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
  "STRATA_SCHEMA_MISMATCH",
  "STRATA_VALUE_INVALID",
  "STRATA_REQUEST_INVALID",
  "STRATA_REQUEST_TOO_LARGE",
  "STRATA_UNAUTHENTICATED",
  "STRATA_UNAVAILABLE",
  "STRATA_DELTA_INVALID",
  "STRATA_WRITER_FENCED",
  "STRATA_FLEET_INCOMPLETE",
  "STRATA_SYSTEM",
  "STRATA_INVARIANT",
  "STRATA_USAGE",
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

/** A bad command line (the CLI's): unknown command or option, missing or malformed argument. */
export class UsageError extends StrataError {
  readonly code = "STRATA_USAGE";
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

/** An error a Strata server answered a call with, under the code it gave (its trailer). */
export class ServerAnsweredError extends StrataError {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The operating system refused a call: a full disk, a missing permission, a read-only filesystem,
 * too many open files. Not a bug and not bad input; `errno` says which (ENOSPC, EACCES, ...).
 */
export class SystemCallError extends StrataError {
  readonly code = "STRATA_SYSTEM";
  constructor(
    message: string,
    readonly errno: string,
    readonly syscall: string,
    readonly path: string | undefined,
    options: ErrorOptions = {},
  ) {
    super(message, options);
  }
}

/** Node's form of a failed system call: a string errno `code` and the `syscall`. */
export function isErrnoError(err: unknown): err is NodeJS.ErrnoException & { code: string; syscall: string } {
  const e = err as Partial<NodeJS.ErrnoException> | null;
  return (
    err instanceof Error &&
    typeof e?.code === "string" &&
    /^E[A-Z0-9]+$/.test(e.code) &&
    typeof e.syscall === "string"
  );
}

/** Names `path` in a failed call on a file descriptor (Node names none there); returns `err`. */
export function withPath(err: unknown, path: string): unknown {
  if (isErrnoError(err) && err.path === undefined) err.path = path;
  return err;
}

/**
 * `err` as a SystemCallError when it is a failed file system call, worded "no space left on
 * device (ENOSPC): write '/data/...'", else null. Network errors ("connect ECONNREFUSED ...")
 * are not: the code that connects reports them as UnavailableError.
 */
export function systemCallError(err: unknown): SystemCallError | null {
  if (err instanceof SystemCallError) return err;
  const message = fileCallMessage(err);
  if (message === null || !isErrnoError(err)) return null;
  return new SystemCallError(message, err.code, err.syscall, err.path, { cause: err });
}

/** systemCallError's wording of a failed file system call, or null for anything else. */
function fileCallMessage(err: unknown): string | null {
  if (!isErrnoError(err)) return null;
  // Node words a failed file call "ENOSPC: no space left on device, write '/path'".
  const description = new RegExp(`^${err.code}: ([^,]+)`).exec(err.message)?.[1];
  if (description === undefined) return null;
  return `${description} (${err.code}): ${err.path === undefined ? err.syscall : `${err.syscall} '${err.path}'`}`;
}

/**
 * Why `what` cannot listen on `address`: a SystemCallError when the system refused the port (in
 * use, not permitted), found in Node's error ("listen EADDRINUSE: address already in use ...")
 * or in grpc-js's summary of it (in a cluster worker: "bind EADDRINUSE ..."); else UnavailableError.
 */
export function listenError(what: string, address: string, err: unknown): StrataError {
  const where = `Cannot listen on ${address} (${what})`;
  const errno = /\b(?:listen|bind) (E[A-Z0-9]+)\b/.exec(errorMessage(err))?.[1];
  if (errno === undefined) return new UnavailableError(`${where}: ${errorMessage(err)}`, { cause: err });
  const description = [...getSystemErrorMap().values()].find(([name]) => name === errno)?.[1] ?? errno;
  return new SystemCallError(`${where}: ${description} (${errno})`, errno, "listen", undefined, {
    cause: err,
  });
}

/** For logs and reports; a failed file system call comes with its file (see systemCallError). */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? (fileCallMessage(err) ?? err.message) : String(err);
}
