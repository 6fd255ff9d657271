/**
 * The CSV import's hot loop in the addon (native/csv_encode.cc): plain lines typed straight into
 * segment records, hundreds of lines a call, each framed there as `RecordTarget.commit` would
 * (CRC, key hash, index entry). It is a port of {@link CsvRowCoercer.tryLineInto}, which stays
 * the reference and the fallback: the native loop stops at the first line it does not take, and
 * that line goes the JS way (tryLineInto, or the tokeniser with its error messages), so which
 * lines are taken natively changes no byte and no message. Tests encode random files both ways
 * and compare the segment files byte for byte.
 */
import { encodeCsvLines } from "../storage/native.js";
import type { RecordTarget } from "../format/segment-encoder.js";
import type { FusedColumns } from "./row-coercion.js";

// The plan's header (native/csv_encode.cc `PlanHeader`), then 4 words per column
// (kind, role, slot offset, vector length), 2 per string/bytes feature (END slot, feature),
// one per null byte of the features without a column.
const PLAN_COLUMNS = 0;
const PLAN_DIRECT = 1;
const PLAN_VAR_START = 2;
const PLAN_NULL_BYTES = 3;
const PLAN_VAR_COUNT = 4;
const PLAN_RESERVE = 5;
const PLAN_LINE_BYTES = 6;
const PLAN_FEATURES = 7;
const PLAN_HEADER = 8;

// The cursor (`Cursor`): the default event time in; where it stopped and why out.
const CURSOR_EVENT_TIME = 0;
const CURSOR_NEXT = 1;

/** Packs the columns for encodeCsvLines. */
export function packLinePlan(c: FusedColumns): Int32Array {
  const ncols = c.kinds.length;
  const nvar = c.varOffsets.length;
  const plan = new Int32Array(PLAN_HEADER + ncols * 4 + nvar * 2 + c.nullBytes);
  plan[PLAN_COLUMNS] = ncols;
  plan[PLAN_DIRECT] = c.direct ? 1 : 0;
  plan[PLAN_VAR_START] = c.varStart;
  plan[PLAN_NULL_BYTES] = c.nullBytes;
  plan[PLAN_VAR_COUNT] = nvar;
  plan[PLAN_RESERVE] = c.reserveBytes;
  plan[PLAN_LINE_BYTES] = c.lineBytes;
  plan[PLAN_FEATURES] = c.features;
  let w = PLAN_HEADER;
  for (let j = 0; j < ncols; j++) {
    plan[w++] = c.kinds[j]!;
    plan[w++] = c.roles[j]!;
    plan[w++] = Math.max(0, c.slotOffsets[j]!);
    plan[w++] = c.lengths[j]!;
  }
  for (let k = 0; k < nvar; k++) {
    plan[w++] = c.varOffsets[k]!;
    plan[w++] = c.varFeatures[k]!;
  }
  if (c.absentNulls !== null) for (let k = 0; k < c.nullBytes; k++) plan[w + k] = c.absentNulls[k]!;
  return plan;
}

/** One CSV file's columns, typed by the addon. */
export class NativeLines {
  /** After {@link take}: the offset past the last line taken. */
  next = 0;
  private readonly plan: Int32Array;
  private readonly cursor = new Float64Array(3);

  constructor(columns: FusedColumns, defaultEventTimeMs: number) {
    this.plan = packLinePlan(columns);
    this.cursor[CURSOR_EVENT_TIME] = defaultEventTimeMs;
  }

  /** Whether the addon can type rows with this default event time (commit would refuse others). */
  static accepts(defaultEventTimeMs: number): boolean {
    return Number.isSafeInteger(defaultEventTimeMs);
  }

  /**
   * Types the complete plain lines at `src[start..limit)` into records of `target`, up to the
   * first line the native side does not take or where `target.reserve` would have work to do
   * (flush its chunk, start a new part): returns how many lines it took (0 when the first is
   * such a line: the caller then takes it the JS way, which reserves).
   */
  take(src: Buffer, start: number, limit: number, target: RecordTarget): number {
    const batch = target.openBatch();
    let lines: number;
    try {
      lines = encodeCsvLines(
        this.plan,
        this.cursor,
        src,
        start,
        limit,
        batch.bytes,
        batch.state,
        batch.entries,
        batch.eventTimes,
      );
    } finally {
      target.closeBatch();
    }
    this.next = this.cursor[CURSOR_NEXT]!;
    return lines;
  }
}
