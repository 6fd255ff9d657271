/**
 * The failure vocabulary of ingest. An invalid delta never stops the ingestor: it becomes a dead
 * letter whose `strata-error` header is the error's message and `strata-error-kind` its problem.
 */
import { StrataError } from "../shared/errors.js";

/**
 * Why a delta event was refused; stable names, used as the `strata-error-kind` header and as a
 * metric label. `stored_row_corrupt` is the one that is not the producer's fault: a partial upsert
 * whose stored row fails its CRC check cannot be merged, so it is dead-lettered rather than
 * applied over a row whose other features are unknown. `internal_error` is a decoder failure
 * nobody foresaw (a bug): the message is dead-lettered all the same, so the stream goes on.
 */
export const DELTA_PROBLEMS = [
  "bad_json",
  "bad_protobuf",
  "unsupported_content_type",
  "oversize",
  "bad_op",
  "missing_key",
  "bad_key",
  "key_mismatch",
  "wrong_table",
  "unknown_field",
  "unknown_feature",
  "wrong_type",
  "bad_event_time",
  "stored_row_corrupt",
  "internal_error",
] as const;

export type DeltaProblem = (typeof DELTA_PROBLEMS)[number];

/** A Kafka message that is not a valid delta event for its table. */
export class InvalidDeltaError extends StrataError {
  readonly code = "STRATA_DELTA_INVALID";
  constructor(
    readonly problem: DeltaProblem,
    message: string,
    /** The feature at fault, when there is one. */
    readonly feature?: string,
  ) {
    super(message);
  }
}
