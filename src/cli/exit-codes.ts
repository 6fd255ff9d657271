/**
 * Process exit codes of the CLI, from error codes: the CLI's one mapping (docs/cli.md lists them).
 */
import { StrataError, type ErrorCode } from "../shared/errors.js";

export const EXIT = {
  OK: 0,
  /** A bug or an unexpected failure (the message says what). */
  INTERNAL: 1,
  /** Bad command line: unknown command or option, missing argument. */
  USAGE: 2,
  /** The table config or an environment variable is invalid. */
  CONFIG: 3,
  /** An unknown table or version, or a table with nothing published. */
  NOT_FOUND: 4,
  /** Verification failed: a segment or manifest is corrupt (the message names the file). */
  CORRUPT: 5,
  /**
   * The table's state refuses the operation: pinned, locked, rolled back, nothing to roll back to,
   * written with a schema the config cannot read or ingest cannot merge onto.
   */
  REFUSED: 6,
  /** The input file (import, produce) has a bad row. */
  BAD_INPUT: 7,
  /** A server or service could not be reached. */
  UNAVAILABLE: 8,
  /** A fleet command saved its desired state, but some live nodes did not reach it in time (named). */
  INCOMPLETE: 9,
  /** The operating system refused a call: disk full, permission denied, too many open files (named). */
  SYSTEM: 10,
} as const;

const BY_CODE: Record<ErrorCode, number> = {
  STRATA_CONFIG_INVALID: EXIT.CONFIG,
  STRATA_SEGMENT_CORRUPT: EXIT.CORRUPT,
  STRATA_SEGMENT_UNSUPPORTED: EXIT.CORRUPT,
  STRATA_RECORD_CORRUPT: EXIT.CORRUPT,
  STRATA_MANIFEST_CORRUPT: EXIT.CORRUPT,
  STRATA_TABLE_NOT_FOUND: EXIT.NOT_FOUND,
  STRATA_VERSION_NOT_FOUND: EXIT.NOT_FOUND,
  STRATA_NO_VERSION: EXIT.NOT_FOUND,
  STRATA_NO_PREVIOUS_VERSION: EXIT.REFUSED,
  STRATA_TABLE_LOCKED: EXIT.REFUSED,
  STRATA_TABLE_PINNED: EXIT.REFUSED,
  STRATA_VERSION_ROLLED_BACK: EXIT.REFUSED,
  STRATA_IMPORT_INVALID: EXIT.BAD_INPUT,
  STRATA_SCHEMA_MISMATCH: EXIT.REFUSED,
  STRATA_VALUE_INVALID: EXIT.BAD_INPUT,
  STRATA_REQUEST_INVALID: EXIT.USAGE,
  STRATA_REQUEST_TOO_LARGE: EXIT.USAGE,
  STRATA_UNAUTHENTICATED: EXIT.USAGE,
  STRATA_UNAVAILABLE: EXIT.UNAVAILABLE,
  STRATA_DELTA_INVALID: EXIT.BAD_INPUT,
  STRATA_WRITER_FENCED: EXIT.REFUSED,
  STRATA_FLEET_INCOMPLETE: EXIT.INCOMPLETE,
  STRATA_SYSTEM: EXIT.SYSTEM,
  STRATA_INVARIANT: EXIT.INTERNAL,
  STRATA_USAGE: EXIT.USAGE,
};

export function exitCodeOf(err: unknown): number {
  return err instanceof StrataError ? BY_CODE[err.code] : EXIT.INTERNAL;
}
