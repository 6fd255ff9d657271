import { StrataError } from "../shared/errors.js";

/** Bytes that do not follow the segment grammar: the whole segment is refused. */
export class SegmentCorruptError extends StrataError {
  readonly code = "STRATA_SEGMENT_CORRUPT";
  constructor(
    message: string,
    /** The file, when the bytes came from one (set by storage/, never by format/). */
    readonly segmentPath?: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export class SegmentUnsupportedError extends StrataError {
  readonly code = "STRATA_SEGMENT_UNSUPPORTED";
}

/** Records failed their CRC (or their bounds): those keys are data loss, the rest may serve. */
export class RecordCorruptError extends StrataError {
  readonly code = "STRATA_RECORD_CORRUPT";
  constructor(
    message: string,
    /** The record's offset in its segment, when the error is about one. */
    readonly recordOffset: number | null = null,
  ) {
    super(message);
  }
}
