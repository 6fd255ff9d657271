/**
 * Import rows, typed: a CSV record (through its header) or a JSONL object becomes
 * `{ key, values (schema order), eventTimeMs }`, or an {@link ImportRowError} naming the line,
 * the column and the reason.
 *
 * CSV cells (an unquoted empty cell is null; so is a quoted empty one, except for `string` and
 * `bytes`, where `""` is the empty value):
 * - float32 / float64: a decimal number, `[+-]digits[.digits][e[+-]digits]` (`.5` and `5.` too),
 *   or `NaN`, `Infinity`, `-Infinity`. No hex, no whitespace. A finite number too large for the
 *   type is an error, not an infinity. float32 values are rounded to float32 (`Math.fround`).
 * - int64: an optional minus and digits, within the signed 64-bit range → bigint.
 * - bool: `true` / `false` (any case), `1` / `0`.
 * - string: the cell, as is.
 * - bytes: standard base64 with padding (RFC 4648 §4), strictly checked.
 * - float32[N]: a JSON array of exactly N numbers (`NaN`, `Infinity`, `-Infinity` allowed), e.g.
 *   `"[0.1,0.2]"`.
 * - the event-time column (`event_time_ms` unless configured; only when no feature has that name):
 *   a non-negative integer of milliseconds; empty → the default event time.
 *
 * JSONL fields: numbers for floats (or the strings "NaN", "Infinity", "-Infinity"); int64 as an
 * integer number up to 2^53 or a decimal string; bool as true/false; string; bytes as a base64
 * string; vectors as arrays; null (or a missing field) is null.
 *
 * Keys: a non-empty string of at most {@link MAX_KEY_BYTES} UTF-8 bytes, valid UTF-8. A JSONL key
 * must be a JSON string (a number is refused rather than guessed at).
 *
 * Speed: CSV is typed in one of two ways that give the same rows and errors (tests compare them).
 * {@link CsvRowCoercer.tryLine} types a plain line straight from its bytes in one pass (a number
 * is parsed where it lies, and where it stops is its field's end); anything unusual (a doubled
 * quote, a line break inside quotes, a record cut by the chunk's end, any error) is declined and
 * goes the general way: the parser tokenises the record, then {@link CsvRowCoercer.coerce} types
 * its fields.
 * Numbers never go through a string: decimal digits are accumulated and, for at most 15 digits
 * and a power of ten up to 10^22, one correctly rounded division or multiplication gives the
 * double (Clinger's fast path); longer forms go to `Number` once their grammar is checked.
 */
import { endianness } from "node:os";
import type { FeatureValue, TableSchema } from "../format/schema.js";
import type { RowLayout } from "../format/row-layout.js";
import type { RecordTarget } from "../format/segment-encoder.js";
import { RECORD_HEADER_BYTES } from "../format/segment-layout.js";
import { featureKinds } from "../format/schema.js";
import type { CsvRecord } from "./csv-parser.js";
import { FIELD_ESCAPED, FIELD_QUOTED } from "./csv-parser.js";
import { ImportRowError } from "./errors.js";

export interface ImportRow {
  key: string;
  /** One value per feature, in schema order; null = absent. */
  values: FeatureValue[];
  eventTimeMs: number;
}

export interface RowCoercionOptions {
  /** Event time of rows that carry none (typically the import's start). */
  defaultEventTimeMs: number;
  /** Name of the optional event-time column / field; default "event_time_ms". */
  eventTimeField?: string;
}

export const DEFAULT_EVENT_TIME_FIELD = "event_time_ms";
export const MAX_KEY_BYTES = 1024;

// Column kinds. native/csv_encode.cc (`Kind`) has the same numbers.
const K_FLOAT32 = 0;
const K_FLOAT64 = 1;
const K_INT64 = 2;
const K_BOOL = 3;
const K_STRING = 4;
const K_BYTES = 5;
const K_VECTOR = 6;

const KIND_CODES: Record<string, number> = {
  float32: K_FLOAT32,
  float64: K_FLOAT64,
  int64: K_INT64,
  bool: K_BOOL,
  string: K_STRING,
  bytes: K_BYTES,
  float32_vector: K_VECTOR,
};

interface CompiledSchema {
  readonly names: readonly string[];
  readonly types: readonly string[];
  readonly kinds: Uint8Array;
  /** Vector length per feature (0 for scalars). */
  readonly lengths: Int32Array;
}

function compile(schema: TableSchema): CompiledSchema {
  const fk = featureKinds(schema);
  const kinds = new Uint8Array(fk.length);
  const lengths = new Int32Array(fk.length);
  fk.forEach((k, i) => {
    kinds[i] = KIND_CODES[k.type]!;
    if (k.type === "float32_vector") lengths[i] = k.length;
  });
  return {
    names: schema.features.map((f) => f.name),
    types: schema.features.map((f) => f.type),
    kinds,
    lengths,
  };
}

/** The event-time column or field of `schema`'s files, or null when a feature or the key has its name. */
export function eventTimeName(
  schema: Pick<TableSchema, "key" | "features">,
  options: Pick<RowCoercionOptions, "eventTimeField">,
): string | null {
  const name = options.eventTimeField ?? DEFAULT_EVENT_TIME_FIELD;
  // A feature (or the key) of that name wins: the column is then data, not the event time.
  if (name === schema.key || schema.features.some((f) => f.name === name)) return null;
  return name;
}

const COL_KEY = -1;
const COL_EVENT_TIME = -2;
/** Column kind of the key (a string that must be non-empty and short). */
const K_KEY = 7;
/** Column kind of the event time. */
const K_EVENT_TIME = 8;

const COMMA = 0x2c;
const QUOTE = 0x22;
const LF = 0x0a;
const CR = 0x0d;

/** Lines longer than this are not typed into a record directly (they take the general way). */
const FUSED_LINE_BYTES = 16 * 1024;

/**
 * How {@link CsvRowCoercer.tryLineInto} types each column of the header, for its native port
 * (importer/native-lines.ts packs it for native/csv_encode.cc).
 */
export interface FusedColumns {
  /** Per column: its kind (K_* above; the key is 7, the event time 8). */
  readonly kinds: Uint8Array;
  /** Per column: the feature index, -1 for the key, -2 for the event time. */
  readonly roles: Int32Array;
  /** Per column: the feature's slot offset in the row, or -1. */
  readonly slotOffsets: Int32Array;
  /** Per column: the vector length (0 for scalars). */
  readonly lengths: Int32Array;
  readonly features: number;
  readonly varStart: number;
  readonly nullBytes: number;
  readonly absentNulls: Uint8Array | null;
  readonly varOffsets: Int32Array;
  readonly varFeatures: Int32Array;
  readonly direct: boolean;
  /** What tryLineInto reserves for one line's record. */
  readonly reserveBytes: number;
  /** Longer lines are not typed into records directly. */
  readonly lineBytes: number;
}

/** What {@link CsvRowCoercer.tryLineInto} needs of the row layout, per column of the header. */
interface FusedPlan {
  /** Per column: the feature's slot offset in the row, or -1. */
  readonly slotOffsets: Int32Array;
  readonly varStart: number;
  readonly nullBytes: number;
  /** Null bits of the features that have no column, or null when every feature has one. */
  readonly absentNulls: Uint8Array | null;
  /** END slot offsets and feature indices of the string/bytes features, in schema order. */
  readonly varOffsets: Int32Array;
  readonly varFeatures: Int32Array;
  /** The key is the first column: the row is written in place, else in `scratch` then copied. */
  readonly direct: boolean;
  readonly reserveBytes: number;
  readonly scratch: Buffer;
  readonly scratchFloats: Float32Array;
  readonly scratchDoubles: Float64Array;
  readonly scratchWords: Int32Array;
}

/** Maps the columns of one CSV file (its header) onto a schema. */
export class CsvRowCoercer {
  readonly columnNames: readonly string[];
  /** Where the last {@link tryLine} ended (just past the line end). */
  fastNext = 0;
  private readonly schema: CompiledSchema;
  private readonly keyColumn: number;
  private readonly eventTimeColumn: number;
  /** Per feature, its column or -1. */
  private readonly featureColumns: Int32Array;
  /** Per column: COL_KEY, COL_EVENT_TIME or the feature index. */
  private readonly roles: Int32Array;
  /** Per column: K_* of its feature, or K_KEY / K_EVENT_TIME. */
  private readonly columnKinds: Uint8Array;
  private readonly columnLengths: Int32Array;
  /** All-null values, copied for each row. */
  private readonly nulls: FeatureValue[];
  private readonly defaultEventTimeMs: number;
  private fused: FusedPlan | null = null;

  constructor(schema: TableSchema, header: readonly string[], options: RowCoercionOptions, headerLine = 1) {
    this.schema = compile(schema);
    this.defaultEventTimeMs = options.defaultEventTimeMs;
    this.columnNames = header.slice();
    this.nulls = this.schema.names.map(() => null);
    const etName = eventTimeName(schema, options);
    const featureIndex = new Map(this.schema.names.map((n, i) => [n, i]));
    this.featureColumns = new Int32Array(this.schema.names.length).fill(-1);
    this.roles = new Int32Array(header.length);
    this.columnKinds = new Uint8Array(header.length);
    this.columnLengths = new Int32Array(header.length);
    const seen = new Map<string, number>();
    let keyColumn = -1;
    let eventTimeColumn = -1;
    header.forEach((name, j) => {
      const where = { line: headerLine, column: j + 1, field: name };
      const prev = seen.get(name);
      if (prev !== undefined) {
        throw new ImportRowError(
          `header repeats column ${JSON.stringify(name)} (first at column ${prev + 1})`,
          where,
        );
      }
      seen.set(name, j);
      if (name === schema.key) {
        keyColumn = j;
        this.roles[j] = COL_KEY;
        this.columnKinds[j] = K_KEY;
      } else if (name === etName) {
        eventTimeColumn = j;
        this.roles[j] = COL_EVENT_TIME;
        this.columnKinds[j] = K_EVENT_TIME;
      } else {
        const f = featureIndex.get(name);
        if (f === undefined) {
          throw new ImportRowError(
            `unknown column ${JSON.stringify(name)}: table "${schema.name}" has key ${JSON.stringify(schema.key)}` +
              `${etName === null ? "" : `, event time ${JSON.stringify(etName)}`} and features ` +
              listNames(this.schema.names),
            where,
          );
        }
        this.featureColumns[f] = j;
        this.roles[j] = f;
        this.columnKinds[j] = this.schema.kinds[f]!;
        this.columnLengths[j] = this.schema.lengths[f]!;
      }
    });
    if (keyColumn < 0) {
      throw new ImportRowError(
        `header has no key column ${JSON.stringify(schema.key)} (columns: ${listNames(header)})`,
        { line: headerLine },
      );
    }
    this.keyColumn = keyColumn;
    this.eventTimeColumn = eventTimeColumn;
  }

  /** Types one tokenised record. Throws {@link ImportRowError}. */
  coerce(rec: CsvRecord): ImportRow {
    const ncols = this.columnNames.length;
    if (rec.count !== ncols) {
      throw new ImportRowError(
        `has ${rec.count} field${rec.count === 1 ? "" : "s"}, the header has ${ncols}`,
        { line: rec.line },
      );
    }
    const key = this.key(rec);
    const { kinds, lengths } = this.schema;
    const columns = this.featureColumns;
    const values = this.nulls.slice();
    for (let f = 0; f < kinds.length; f++) {
      const j = columns[f]!;
      if (j >= 0) values[f] = this.value(rec, j, kinds[f]!, lengths[f]!, f);
    }
    let eventTimeMs = this.defaultEventTimeMs;
    const et = this.eventTimeColumn;
    if (et >= 0) {
      const s = rec.starts[et]!;
      const e = rec.ends[et]!;
      if (s !== e) {
        if (scanEventTime(rec.buf, s, e) !== e) {
          throw this.error(rec, et, `${quoteCell(rec, et)} is not an event time (integer milliseconds >= 0)`);
        }
        eventTimeMs = OUT[0]!;
      }
    }
    return { key, values, eventTimeMs };
  }

  /**
   * The fast path ({@link CsvParserOptions.tryRecord}): types the record at `rec.buf[start..)`
   * straight from its bytes, without tokenising it first, when it is one plain line before
   * `limit` that holds a valid row; quoted fields are taken only for vectors, strings and keys,
   * and without doubled quotes or line breaks inside. Returns the row (and sets
   * {@link fastNext}), or null for anything else (an error included): the caller then tokenises
   * the record and calls {@link coerce}, which gives the same row or the error.
   */
  tryLine(rec: CsvRecord, start: number, limit: number): ImportRow | null {
    const b = rec.buf;
    const ncols = this.roles.length;
    const roles = this.roles;
    const kinds = this.columnKinds;
    const values = this.nulls.slice();
    let key: string | null = null;
    let eventTimeMs = this.defaultEventTimeMs;
    let p = start;
    for (let j = 0; j < ncols; j++) {
      if (p >= limit) return null;
      const c = b[p]!;
      const kind = kinds[j]!;
      let end = p;
      let value: FeatureValue = null;
      if (c === COMMA || c === LF || c === CR) {
        if (kind === K_KEY) return null;
      } else {
        switch (kind) {
          case K_FLOAT32:
          case K_FLOAT64: {
            end = scanNumber(b, p, limit);
            if (end < 0) return null;
            const v = OUT[0]!;
            if (kind === K_FLOAT32) {
              const r = Math.fround(v);
              if (r - r !== 0 && v - v === 0) return null;
              value = r;
            } else {
              value = v;
            }
            break;
          }
          case K_INT64:
            end = scanInt64(b, p, limit);
            if (end < 0) return null;
            value = intOut;
            break;
          case K_VECTOR: {
            if (c !== QUOTE) return null;
            end = scanVector(b, p + 1, limit, this.columnLengths[j]!, false);
            if (end < 0 || end >= limit || b[end] !== QUOTE) return null;
            end++;
            value = vectorOut;
            break;
          }
          case K_STRING:
          case K_KEY: {
            let s = p;
            if (c === QUOTE) {
              s = p + 1;
              end = s;
              while (end < limit) {
                const d = b[end]!;
                if (d === QUOTE || d === LF) break;
                end++;
              }
              // A doubled quote or a line break inside: let the tokeniser handle it.
              if (end + 1 >= limit || b[end] !== QUOTE || b[end + 1] === QUOTE) return null;
            } else {
              end = scanPlain(b, p, limit);
            }
            if (kind === K_KEY && (end === s || end - s > MAX_KEY_BYTES)) return null;
            value = rec.text(s, end);
            if (c === QUOTE) end++;
            break;
          }
          case K_BOOL: {
            end = scanPlain(b, p, limit);
            const v = parseBoolBytes(b, p, end);
            if (v === undefined) return null;
            value = v;
            break;
          }
          case K_BYTES: {
            if (c === QUOTE) return null;
            end = scanPlain(b, p, limit);
            if (!isBase64Bytes(b, p, end)) return null;
            value = decodeBase64(b, p, end);
            break;
          }
          default: // K_EVENT_TIME
            end = scanEventTime(b, p, limit);
            if (end < 0) return null;
            eventTimeMs = OUT[0]!;
        }
      }
      if (end >= limit) return null;
      const d = b[end];
      if (j < ncols - 1) {
        if (d !== COMMA) return null;
        p = end + 1;
      } else if (d === LF) {
        p = end + 1;
      } else if (d === CR && end + 1 < limit && b[end + 1] === LF) {
        p = end + 2;
      } else {
        return null;
      }
      const role = roles[j]!;
      if (role >= 0) values[role] = value;
      else if (role === COL_KEY) key = value as string;
    }
    if (key === null) return null;
    this.fastNext = p;
    return { key, values, eventTimeMs };
  }

  /**
   * Readies {@link tryLineInto} for rows laid out by `layout` (the writer's, for this schema).
   * false when this header cannot take it (string/bytes columns in another order than the
   * schema's, or a big-endian machine): rows then go through {@link tryLine} or {@link coerce}.
   */
  prepareInto(layout: RowLayout): boolean {
    if (endianness() !== "LE") return false;
    const ncols = this.roles.length;
    const slotOffsets = new Int32Array(ncols).fill(-1);
    for (let j = 0; j < ncols; j++) {
      const f = this.roles[j]!;
      if (f >= 0) slotOffsets[j] = layout.slots[f]!.offset;
    }
    const absentNulls = new Uint8Array(layout.nullBytes);
    let hasAbsent = false;
    const varOffsets: number[] = [];
    const varFeatures: number[] = [];
    let lastVarColumn = -1;
    for (const slot of layout.slots) {
      const j = this.featureColumns[slot.index]!;
      if (j < 0) {
        absentNulls[slot.index >> 3]! |= 1 << (slot.index & 7);
        hasAbsent = true;
      }
      if (slot.kind.type === "string" || slot.kind.type === "bytes") {
        varOffsets.push(slot.offset);
        varFeatures.push(slot.index);
        if (j >= 0) {
          if (j < lastVarColumn) return false; // var bytes must come in schema order
          lastVarColumn = j;
        }
      }
    }
    const scratch = Buffer.alloc(layout.varStart + FUSED_LINE_BYTES + 8);
    this.fused = {
      slotOffsets,
      varStart: layout.varStart,
      nullBytes: layout.nullBytes,
      absentNulls: hasAbsent ? absentNulls : null,
      varOffsets: Int32Array.from(varOffsets),
      varFeatures: Int32Array.from(varFeatures),
      direct: this.keyColumn === 0,
      reserveBytes: RECORD_HEADER_BYTES + 8 + layout.varStart + 8 + FUSED_LINE_BYTES,
      scratch,
      scratchFloats: new Float32Array(scratch.buffer, scratch.byteOffset, scratch.length >> 2),
      scratchDoubles: new Float64Array(scratch.buffer, scratch.byteOffset, scratch.length >> 3),
      scratchWords: new Int32Array(scratch.buffer, scratch.byteOffset, scratch.length >> 2),
    };
    return true;
  }

  /** How {@link tryLineInto} types the columns; null until {@link prepareInto} said yes. */
  fusedColumns(): FusedColumns | null {
    const plan = this.fused;
    if (plan === null) return null;
    return {
      kinds: this.columnKinds,
      roles: this.roles,
      slotOffsets: plan.slotOffsets,
      lengths: this.columnLengths,
      features: this.schema.kinds.length,
      varStart: plan.varStart,
      nullBytes: plan.nullBytes,
      absentNulls: plan.absentNulls,
      varOffsets: plan.varOffsets,
      varFeatures: plan.varFeatures,
      direct: plan.direct,
      reserveBytes: plan.reserveBytes,
      lineBytes: FUSED_LINE_BYTES,
    };
  }

  /**
   * {@link tryLine}, but the row goes straight into a record of `target` (key bytes, then the row
   * in its layout), with no strings, bigints or arrays in between; same rows taken and declined.
   * Needs {@link prepareInto}. Returns the offset past the line end, or -1 (nothing committed).
   */
  tryLineInto(rec: CsvRecord, start: number, limit: number, target: RecordTarget): number {
    const plan = this.fused!;
    const b = rec.buf;
    if (limit - start > FUSED_LINE_BYTES) limit = start + FUSED_LINE_BYTES;
    const at = target.reserve(plan.reserveBytes);
    const out = target.bytes;
    let rb: Buffer;
    let rf32: Float32Array;
    let rf64: Float64Array;
    let ri32: Int32Array;
    let rowAt: number;
    let varAt: number;
    if (plan.direct) {
      rb = out;
      rf32 = target.floats;
      rf64 = target.doubles;
      ri32 = target.words;
      rowAt = -1; // once the key's length is known
      varAt = -1;
    } else {
      rb = plan.scratch;
      rf32 = plan.scratchFloats;
      rf64 = plan.scratchDoubles;
      ri32 = plan.scratchWords;
      rowAt = 0;
      varAt = plan.varStart;
    }
    const ncols = this.roles.length;
    const roles = this.roles;
    const kinds = this.columnKinds;
    const slotOffsets = plan.slotOffsets;
    const keyAt = at + RECORD_HEADER_BYTES;
    let keyLen = 0;
    let eventTimeMs = this.defaultEventTimeMs;
    let p = start;
    for (let j = 0; j < ncols; j++) {
      if (p >= limit) return this.declineInto(out, at, plan);
      const c = b[p]!;
      const kind = kinds[j]!;
      const f = roles[j]!;
      const o = rowAt + slotOffsets[j]!;
      let end = p;
      if (c === COMMA || c === LF || c === CR) {
        if (kind === K_KEY) return this.declineInto(out, at, plan);
        if (f >= 0) rb[rowAt + (f >> 3)]! |= 1 << (f & 7);
      } else {
        switch (kind) {
          case K_FLOAT32: {
            end = scanFloat32(b, p, limit);
            if (end < 0) return this.declineInto(out, at, plan);
            const v = OUT[0]!;
            const r = Math.fround(v);
            if (r - r !== 0 && v - v === 0) return this.declineInto(out, at, plan);
            rf32[o >> 2] = r;
            break;
          }
          case K_FLOAT64:
            end = scanNumber(b, p, limit);
            if (end < 0) return this.declineInto(out, at, plan);
            rf64[o >> 3] = OUT[0]!;
            break;
          case K_INT64: {
            // Up to 15 digits: exact in a double, written as two 32-bit halves (no bigint).
            let q = p;
            const neg = c === 0x2d;
            if (neg) q++;
            const ds = q;
            let v = 0;
            while (q < limit) {
              const d = b[q]! - 0x30;
              if (d < 0 || d > 9) break;
              v = v * 10 + d;
              q++;
            }
            if (q === ds || q - ds > 15) return this.declineInto(out, at, plan);
            if (neg) v = -v;
            ri32[o >> 2] = v;
            ri32[(o >> 2) + 1] = Math.floor(v / 4294967296);
            end = q;
            break;
          }
          case K_VECTOR: {
            if (c !== QUOTE) return this.declineInto(out, at, plan);
            end = scanVectorInto(b, p + 1, limit, this.columnLengths[j]!, false, rf32, o >> 2);
            if (end < 0 || end >= limit || b[end] !== QUOTE) return this.declineInto(out, at, plan);
            end++;
            break;
          }
          case K_STRING:
          case K_KEY: {
            let s = p;
            if (c === QUOTE) {
              s = p + 1;
              end = s;
              while (end < limit) {
                const d = b[end]!;
                if (d === QUOTE || d === LF) break;
                end++;
              }
              if (end + 1 >= limit || b[end] !== QUOTE || b[end + 1] === QUOTE)
                return this.declineInto(out, at, plan);
            } else {
              end = scanPlain(b, p, limit);
            }
            const n = end - s;
            if (kind === K_KEY) {
              if (n === 0 || n > MAX_KEY_BYTES) return this.declineInto(out, at, plan);
              copyBytes(b, s, end, out, keyAt);
              keyLen = n;
              if (rowAt < 0) {
                rowAt = keyAt + ((n + 7) & ~7);
                varAt = rowAt + plan.varStart;
              }
            } else {
              copyBytes(b, s, end, rb, varAt);
              varAt += n;
              ri32[o >> 2] = varAt - rowAt - plan.varStart;
            }
            if (c === QUOTE) end++;
            break;
          }
          case K_BOOL: {
            end = scanPlain(b, p, limit);
            const v = parseBoolBytes(b, p, end);
            if (v === undefined) return this.declineInto(out, at, plan);
            if (v) rb[o] = 1;
            break;
          }
          case K_BYTES: {
            if (c === QUOTE) return this.declineInto(out, at, plan);
            end = scanPlain(b, p, limit);
            if (!isBase64Bytes(b, p, end)) return this.declineInto(out, at, plan);
            const bytes = decodeBase64(b, p, end);
            rb.set(bytes, varAt);
            varAt += bytes.length;
            ri32[o >> 2] = varAt - rowAt - plan.varStart;
            break;
          }
          default: // K_EVENT_TIME
            end = scanEventTime(b, p, limit);
            if (end < 0) return this.declineInto(out, at, plan);
            eventTimeMs = OUT[0]!;
        }
      }
      if (end >= limit) return this.declineInto(out, at, plan);
      const d = b[end];
      if (j < ncols - 1) {
        if (d !== COMMA) return this.declineInto(out, at, plan);
        p = end + 1;
      } else if (d === LF) {
        p = end + 1;
      } else if (d === CR && end + 1 < limit && b[end + 1] === LF) {
        p = end + 2;
      } else {
        return this.declineInto(out, at, plan);
      }
    }
    // Features without a column are null; a null string/bytes repeats the previous END.
    const absent = plan.absentNulls;
    if (absent !== null) for (let k = 0; k < absent.length; k++) rb[rowAt + k]! |= absent[k]!;
    const varOffsets = plan.varOffsets;
    let prevEnd = 0;
    for (let k = 0; k < varOffsets.length; k++) {
      const f = plan.varFeatures[k]!;
      const w = (rowAt + varOffsets[k]!) >> 2;
      if ((rb[rowAt + (f >> 3)]! & (1 << (f & 7))) !== 0) ri32[w] = prevEnd;
      else prevEnd = ri32[w]!;
    }
    const valueLen = varAt - rowAt;
    if (!plan.direct) {
      const valueAt = keyAt + ((keyLen + 7) & ~7);
      copyBytes(rb, 0, valueLen, out, valueAt);
      rb.fill(0, 0, valueLen);
    }
    target.commit(at, keyLen, valueLen, eventTimeMs);
    this.fastNext = p;
    return p;
  }

  private declineInto(out: Buffer, at: number, plan: FusedPlan): number {
    out.fill(0, at, at + plan.reserveBytes);
    if (!plan.direct) plan.scratch.fill(0);
    return -1;
  }

  private key(rec: CsvRecord): string {
    const j = this.keyColumn;
    const s = rec.starts[j]!;
    const e = rec.ends[j]!;
    if (s === e) throw this.error(rec, j, "the key is empty");
    const escaped = (rec.flags[j]! & FIELD_ESCAPED) !== 0;
    if (!escaped && e - s > MAX_KEY_BYTES) throw this.error(rec, j, keyTooLong(e - s));
    const key = rec.field(j);
    if (escaped && Buffer.byteLength(key) > MAX_KEY_BYTES) {
      throw this.error(rec, j, keyTooLong(Buffer.byteLength(key)));
    }
    return key;
  }

  private value(rec: CsvRecord, j: number, kind: number, length: number, f: number): FeatureValue {
    const b = rec.buf;
    const s = rec.starts[j]!;
    const e = rec.ends[j]!;
    if (s === e) {
      if ((kind === K_STRING || kind === K_BYTES) && (rec.flags[j]! & FIELD_QUOTED) !== 0) {
        return kind === K_STRING ? "" : new Uint8Array(0);
      }
      return null;
    }
    switch (kind) {
      case K_FLOAT32:
      case K_FLOAT64: {
        const end = scanNumber(b, s, e);
        const type = this.schema.types[f]!;
        if (end !== e) {
          const why =
            end < 0 && numberFailure === "range" ? `is out of the ${type} range` : `is not a ${type}`;
          throw this.error(rec, j, `${quoteCell(rec, j)} ${why}`);
        }
        const v = OUT[0]!;
        if (kind === K_FLOAT64) return v;
        const r = Math.fround(v);
        if (r - r !== 0 && v - v === 0)
          throw this.error(rec, j, `${quoteCell(rec, j)} is out of the ${type} range`);
        return r;
      }
      case K_INT64: {
        const end = scanInt64(b, s, e);
        if (end !== e) {
          const why = isIntegerText(b, s, e) ? "is out of the int64 range" : "is not an int64";
          throw this.error(rec, j, `${quoteCell(rec, j)} ${why}`);
        }
        return intOut;
      }
      case K_BOOL: {
        const v = parseBoolBytes(b, s, e);
        if (v === undefined) {
          throw this.error(rec, j, `${quoteCell(rec, j)} is not a bool (true, false, 1 or 0)`);
        }
        return v;
      }
      case K_STRING:
        return rec.field(j);
      case K_BYTES:
        if (!isBase64Bytes(b, s, e)) throw this.error(rec, j, `${quoteCell(rec, j)} is not valid base64`);
        return decodeBase64(b, s, e);
      default: {
        const end = scanVector(b, s, e, length, true);
        if (end !== e) {
          if (end >= 0) reason = "text after the closing bracket";
          throw this.error(rec, j, `${quoteCell(rec, j)} is not a ${this.schema.types[f]}: ${reason}`);
        }
        return vectorOut;
      }
    }
  }

  private error(rec: CsvRecord, j: number, reason: string): ImportRowError {
    return new ImportRowError(reason, { line: rec.line, column: j + 1, field: this.columnNames[j] ?? null });
  }
}

/** Copies `src[s..e)` to `dst[at..)`: a loop for the short fields of most rows, natively past that. */
function copyBytes(src: Buffer, s: number, e: number, dst: Buffer, at: number): void {
  if (e - s > 24) {
    src.copy(dst, at, s, e);
    return;
  }
  for (let i = s; i < e; i++) dst[at++] = src[i]!;
}

/** The end of an unquoted field: the first comma, CR, LF or quote (or `limit`). */
function scanPlain(b: Buffer, p: number, limit: number): number {
  while (p < limit) {
    const c = b[p]!;
    if (c <= COMMA && (c === COMMA || c === LF || c === CR || c === QUOTE)) break;
    p++;
  }
  return p;
}

function decodeBase64(b: Buffer, s: number, e: number): Uint8Array {
  return Buffer.from(b.toString("latin1", s, e), "base64");
}

/** Types the objects of one JSONL file. */
export class JsonRowCoercer {
  private readonly schema: CompiledSchema;
  private readonly keyName: string;
  private readonly eventTimeName: string | null;
  private readonly featureIndex: Map<string, number>;
  private readonly defaultEventTimeMs: number;
  private readonly tableName: string;

  constructor(schema: TableSchema, options: RowCoercionOptions) {
    this.schema = compile(schema);
    this.keyName = schema.key;
    this.tableName = schema.name;
    this.eventTimeName = eventTimeName(schema, options);
    this.featureIndex = new Map(this.schema.names.map((n, i) => [n, i]));
    this.defaultEventTimeMs = options.defaultEventTimeMs;
  }

  /** Types one parsed line. Throws {@link ImportRowError}. */
  coerce(obj: unknown, line: number): ImportRow {
    if (typeof obj !== "object" || obj === null || Array.isArray(obj)) {
      throw new ImportRowError(`expected a JSON object, got ${describeJson(obj)}`, { line });
    }
    const record = obj as Record<string, unknown>;
    const { kinds, lengths, names } = this.schema;
    const values: FeatureValue[] = new Array<FeatureValue>(kinds.length).fill(null);
    let key: string | undefined;
    let eventTimeMs = this.defaultEventTimeMs;
    for (const name of Object.keys(record)) {
      const v = record[name];
      if (name === this.keyName) {
        key = this.key(v, line);
      } else if (name === this.eventTimeName) {
        if (v !== null) {
          if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
            throw new ImportRowError(`${describeJson(v)} is not an event time (integer milliseconds >= 0)`, {
              line,
              field: name,
            });
          }
          eventTimeMs = v;
        }
      } else {
        const f = this.featureIndex.get(name);
        if (f === undefined) {
          throw new ImportRowError(
            `unknown field: table "${this.tableName}" has key ${JSON.stringify(this.keyName)}` +
              `${this.eventTimeName === null ? "" : `, event time ${JSON.stringify(this.eventTimeName)}`}` +
              ` and features ${listNames(names)}`,
            { line, field: name },
          );
        }
        values[f] = v === null ? null : this.value(v, kinds[f]!, lengths[f]!, f, line);
      }
    }
    if (key === undefined) {
      throw new ImportRowError(`missing the key field ${JSON.stringify(this.keyName)}`, { line });
    }
    return { key, values, eventTimeMs };
  }

  private key(v: unknown, line: number): string {
    const where = { line, field: this.keyName };
    if (typeof v !== "string")
      throw new ImportRowError(`the key must be a string, got ${describeJson(v)}`, where);
    if (v.length === 0) throw new ImportRowError("the key is empty", where);
    if (!isWellFormed(v)) throw new ImportRowError("the key is not valid UTF-8 (a lone surrogate)", where);
    const bytes = v.length * 3 <= MAX_KEY_BYTES ? v.length : Buffer.byteLength(v);
    if (bytes > MAX_KEY_BYTES) throw new ImportRowError(keyTooLong(bytes), where);
    return v;
  }

  private value(v: unknown, kind: number, length: number, f: number, line: number): FeatureValue {
    const type = this.schema.types[f]!;
    const fail = (why = `is not ${type === "int64" ? "an" : "a"} ${type}`): ImportRowError =>
      new ImportRowError(`${describeJson(v)} ${why}`, { line, field: this.schema.names[f]! });
    switch (kind) {
      case K_FLOAT32:
      case K_FLOAT64:
        return floatValue(jsonFloat(v), kind === K_FLOAT32, type, fail);
      case K_INT64: {
        if (typeof v === "number") {
          if (!Number.isInteger(v)) throw fail();
          if (!Number.isSafeInteger(v)) {
            throw fail("is beyond 2^53, where JSON numbers lose digits: write it as a decimal string");
          }
          return BigInt(v);
        }
        if (typeof v === "string") {
          if (!INT64_TEXT.test(v)) throw fail();
          const x = BigInt(v);
          if (x < INT64_MIN || x > INT64_MAX) throw fail("is out of the int64 range");
          return x;
        }
        throw fail();
      }
      case K_BOOL:
        if (typeof v !== "boolean") throw fail("is not a bool (true or false)");
        return v;
      case K_STRING:
        if (typeof v !== "string") throw fail();
        if (!isWellFormed(v)) throw fail("is not valid UTF-8 (a lone surrogate)");
        return v;
      case K_BYTES: {
        if (typeof v !== "string" || !isBase64String(v)) throw fail("is not a base64 string");
        return Buffer.from(v, "base64");
      }
      default:
        if (!Array.isArray(v)) throw fail(`is not a ${type} (expected an array of ${length} numbers)`);
        return float32Vector(v, length, type, jsonFloat, fail);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Byte-level value parsers. They return undefined when the text is not a value of the type, and
// some leave a more precise explanation in `reason`.

let reason = "";
/** Why the last `scanNumber` failed. */
let numberFailure: "syntax" | "range" = "syntax";
/** `scanNumber` leaves its value here: a Float64Array slot keeps it unboxed. */
const OUT = new Float64Array(1);

const POW10 = new Float64Array([
  1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
  1e20, 1e21, 1e22,
]);

/**
 * Scans the decimal number starting at `b[s]` (see {@link parseDecimal} for the grammar), up to the
 * first byte that cannot continue it or `e`. Returns where it ended, the value in `OUT[0]`; or -1
 * (and `numberFailure`) when no number starts there.
 *
 * The fast path takes `[-]digits[.digits]` of at most 15 digits: the mantissa is then an exact
 * integer and 10^k (k <= 15) an exact double, so one division rounds correctly (Clinger's fast
 * path). Anything else goes through {@link parseDecimal}.
 */
function scanNumber(b: Buffer, s: number, e: number): number {
  const p = scanPlainDecimal(b, s, e);
  const { nd, frac } = plain;
  if (nd > 0 && nd <= 15 && (p === e || !continuesNumber(b[p]!))) {
    const v = frac === 0 ? plain.mant : plain.mant / POW10[frac]!;
    OUT[0] = plain.neg ? -v : v;
    return p;
  }
  return scanNumberSlow(b, s, e);
}

/** 2^-45: far more than the relative error of the approximation in {@link scanFloat32}. */
const FLOAT32_SLACK = 2 ** -45;

/**
 * {@link scanNumber} for a value that will be rounded to float32: same grammar, end and failures,
 * and `OUT[0]` holds a double with the same `Math.fround` as the correctly rounded one. Past 15
 * digits (`(i % 97) / 7` printed by JS has 17) the digits are summed in floating point, off from
 * the exact value by far less than 2^-45 relatively; when both ends of that bracket round to the
 * same float32, so does the exact value (rounding is monotonic), whatever the double would have
 * been. Only values within 2^-45 of a float32 midpoint (or with an exponent) take the slow path.
 */
function scanFloat32(b: Buffer, s: number, e: number): number {
  const p = scanPlainDecimal(b, s, e);
  const { nd, frac, neg } = plain;
  if (nd > 0 && nd <= 30 && frac <= 22 && (p === e || !continuesNumber(b[p]!))) {
    const v = frac === 0 ? plain.mant : plain.mant / POW10[frac]!;
    if (nd <= 15) {
      OUT[0] = neg ? -v : v;
      return p;
    }
    const lo = Math.fround(v * (1 - FLOAT32_SLACK));
    if (lo === Math.fround(v * (1 + FLOAT32_SLACK))) {
      OUT[0] = neg ? -lo : lo;
      return p;
    }
  }
  return scanNumberSlow(b, s, e);
}

/** What `scanPlainDecimal` read: one object, reused, so the scanners allocate nothing. */
const plain = { neg: false, mant: 0, nd: 0, frac: 0 };

/**
 * Reads `[-]digits[.digits]` from `b[s]` into `plain` (the mantissa summed as a double, exact up
 * to 15 digits; the number of digits and of fraction digits) and returns where it stopped. The
 * fast paths of {@link scanNumber} and {@link scanFloat32} decide from it whether they may use it.
 */
function scanPlainDecimal(b: Buffer, s: number, e: number): number {
  let p = s;
  let neg = false;
  if (p < e && b[p] === 0x2d) {
    neg = true;
    p++;
  }
  const ds = p;
  let mant = 0;
  while (p < e) {
    const d = b[p]! - 0x30;
    if (d < 0 || d > 9) break;
    mant = mant * 10 + d;
    p++;
  }
  let nd = p - ds;
  let frac = 0;
  if (p < e && b[p] === 0x2e) {
    p++;
    const fs = p;
    while (p < e) {
      const d = b[p]! - 0x30;
      if (d < 0 || d > 9) break;
      mant = mant * 10 + d;
      p++;
    }
    frac = p - fs;
    nd += frac;
  }
  plain.neg = neg;
  plain.mant = mant;
  plain.nd = nd;
  plain.frac = frac;
  return p;
}

/** Bytes after which a fast-path number might go on: an exponent, a second point. */
function continuesNumber(c: number): boolean {
  return c === 0x65 || c === 0x45 || c === 0x2e;
}

function scanNumberSlow(b: Buffer, s: number, e: number): number {
  let t = s;
  while (t < e && isNumberByte(b[t]!)) t++;
  const v = parseDecimal(b, s, t);
  if (v === undefined) {
    numberFailure = "syntax";
    return -1;
  }
  if ((v === Infinity || v === -Infinity) && !isInfinityLiteral(b, s, t)) {
    numberFailure = "range";
    return -1;
  }
  OUT[0] = v;
  return t;
}

/** Digits, signs, '.', letters: what a number token (or a misspelt one) is made of. */
function isNumberByte(c: number): boolean {
  return (
    (c >= 0x30 && c <= 0x39) ||
    c === 0x2b ||
    c === 0x2d ||
    c === 0x2e ||
    ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a)
  );
}

/**
 * A whole field as a decimal number; undefined when it is not one (`numberFailure` says why:
 * a finite literal beyond the float64 range is "range", not an infinity).
 */
export function parseFloatBytes(b: Buffer, s: number, e: number): number | undefined {
  const end = scanNumber(b, s, e);
  if (end !== e) {
    if (end >= 0) numberFailure = "syntax";
    return undefined;
  }
  return OUT[0];
}

/**
 * The grammar: `[+-]` then `digits[.digits]`, `.digits` or `digits.`, then an optional exponent
 * `[eE][+-]digits`; or `NaN`, `[+-]Infinity`. No whitespace, no hex. Correctly rounded (see
 * {@link scanNumber}; what the fast paths do not take goes to `Number` once the grammar is checked).
 */
function parseDecimal(b: Buffer, s: number, e: number): number | undefined {
  let p = s;
  if (p >= e) return undefined;
  let c = b[p]!;
  let neg = false;
  if (c === 0x2d || c === 0x2b) {
    neg = c === 0x2d;
    if (++p >= e) return undefined;
    c = b[p]!;
  }
  if (c === 0x49) return matchAscii(b, p, e, "Infinity") ? (neg ? -Infinity : Infinity) : undefined;
  if (c === 0x4e) return p === s && matchAscii(b, p, e, "NaN") ? NaN : undefined;
  let mant = 0;
  let sig = 0;
  let digits = 0;
  let exp = 0;
  for (; p < e; p++) {
    const d = b[p]! - 0x30;
    if (d < 0 || d > 9) break;
    if (sig > 0 || d !== 0) {
      mant = mant * 10 + d;
      sig++;
    }
    digits++;
  }
  if (p < e && b[p] === 0x2e) {
    for (p++; p < e; p++) {
      const d = b[p]! - 0x30;
      if (d < 0 || d > 9) break;
      if (sig > 0 || d !== 0) {
        mant = mant * 10 + d;
        sig++;
      }
      digits++;
      exp--;
    }
  }
  if (digits === 0) return undefined;
  if (p < e && (b[p] === 0x65 || b[p] === 0x45)) {
    if (++p >= e) return undefined;
    let eneg = false;
    if (b[p] === 0x2d || b[p] === 0x2b) {
      eneg = b[p] === 0x2d;
      p++;
    }
    let ev = 0;
    let ed = 0;
    for (; p < e; p++) {
      const d = b[p]! - 0x30;
      if (d < 0 || d > 9) break;
      if (ev < 1e9) ev = ev * 10 + d;
      ed++;
    }
    if (ed === 0) return undefined;
    exp += eneg ? -ev : ev;
  }
  if (p !== e) return undefined;
  if (sig <= 15) {
    if (mant === 0) return neg ? -0 : 0;
    if (exp === 0) return neg ? -mant : mant;
    if (exp > 0 && exp <= 22) {
      const v = mant * POW10[exp]!;
      return neg ? -v : v;
    }
    if (exp < 0 && exp >= -22) {
      const v = mant / POW10[-exp]!;
      return neg ? -v : v;
    }
  }
  return Number(b.toString("latin1", s, e));
}

function isInfinityLiteral(b: Buffer, s: number, e: number): boolean {
  if (b[s] === 0x2d || b[s] === 0x2b) s++;
  return matchAscii(b, s, e, "Infinity");
}

export const INT64_MIN = -(2n ** 63n);
const INT64_TEXT = /^-?[0-9]+$/;
export const INT64_MAX = 2n ** 63n - 1n;

/** `scanInt64` leaves its value here. */
let intOut = 0n;

/**
 * Scans an optional minus and decimal digits at `b[s..e)`, up to the first non-digit. Returns
 * where it ended, the value in `intOut`; or -1 (with `numberFailure`) when there are no digits or
 * the value is outside the signed 64-bit range.
 */
function scanInt64(b: Buffer, s: number, e: number): number {
  let p = s;
  if (p < e && b[p] === 0x2d) p++;
  const ds = p;
  let v = 0;
  while (p < e) {
    const d = b[p]! - 0x30;
    if (d < 0 || d > 9) break;
    v = v * 10 + d;
    p++;
  }
  const n = p - ds;
  if (n === 0) {
    numberFailure = "syntax";
    return -1;
  }
  if (n <= 9) {
    // An int32 converts about 4x faster than a double.
    const small = v | 0;
    intOut = BigInt(ds > s ? -small : small);
    return p;
  }
  if (n <= 15) {
    intOut = BigInt(ds > s ? -v : v);
    return p;
  }
  const big = BigInt(b.toString("latin1", s, p));
  if (big < INT64_MIN || big > INT64_MAX) {
    numberFailure = "range";
    return -1;
  }
  intOut = big;
  return p;
}

/** An optional minus and digits, nothing else. */
function isIntegerText(b: Buffer, s: number, e: number): boolean {
  if (s < e && b[s] === 0x2d) s++;
  if (s >= e) return false;
  for (let p = s; p < e; p++) if (b[p]! < 0x30 || b[p]! > 0x39) return false;
  return true;
}

/** A whole field as an int64; undefined when it is not one. */
export function parseInt64Bytes(b: Buffer, s: number, e: number): bigint | undefined {
  return scanInt64(b, s, e) === e ? intOut : undefined;
}

/** Non-negative decimal digits up to 2^53 - 1, value in `OUT[0]`; -1 when there are none. */
function scanEventTime(b: Buffer, s: number, e: number): number {
  let p = s;
  let v = 0;
  while (p < e) {
    const d = b[p]! - 0x30;
    if (d < 0 || d > 9) break;
    v = v * 10 + d;
    p++;
  }
  if (p === s || p - s > 16 || !Number.isSafeInteger(v)) return -1;
  OUT[0] = v;
  return p;
}

/** true / false in any case, 1 / 0. */
export function parseBoolBytes(b: Buffer, s: number, e: number): boolean | undefined {
  const n = e - s;
  if (n === 1) {
    if (b[s] === 0x31) return true;
    if (b[s] === 0x30) return false;
    return undefined;
  }
  if (n === 4 && matchAsciiLower(b, s, "true")) return true;
  if (n === 5 && matchAsciiLower(b, s, "false")) return false;
  return undefined;
}

const BASE64_ALPHABET = new Uint8Array(256);
for (const ch of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") {
  BASE64_ALPHABET[ch.charCodeAt(0)] = 1;
}

/** Standard base64, padded to a multiple of 4, '=' only at the end. */
function isBase64Bytes(b: Uint8Array, s: number, e: number): boolean {
  const n = e - s;
  if (n % 4 !== 0) return false;
  let end = e;
  if (n > 0 && b[e - 1] === 0x3d) {
    end--;
    if (b[e - 2] === 0x3d) end--;
  }
  for (let p = s; p < end; p++) if (BASE64_ALPHABET[b[p]!] === 0) return false;
  return true;
}

function isBase64String(v: string): boolean {
  const n = v.length;
  if (n % 4 !== 0) return false;
  let end = n;
  if (n > 0 && v.charCodeAt(n - 1) === 0x3d) {
    end--;
    if (v.charCodeAt(n - 2) === 0x3d) end--;
  }
  for (let i = 0; i < end; i++) {
    const c = v.charCodeAt(i);
    if (c > 0xff || BASE64_ALPHABET[c] === 0) return false;
  }
  return true;
}

/** `scanVector` leaves its value here. */
let vectorOut = new Float32Array(0);

/**
 * Scans a JSON array of exactly `n` numbers (`NaN`, `Infinity`, `-Infinity` allowed) at
 * `b[s..e)`, with JSON whitespace around the tokens (with `multiline` false, only spaces and
 * tabs). Returns the offset after the closing bracket and any whitespace, the value in
 * `vectorOut`; or -1 with `reason`.
 */
function scanVector(b: Buffer, s: number, e: number, n: number, multiline: boolean): number {
  const out = new Float32Array(n);
  const end = scanVectorInto(b, s, e, n, multiline, out, 0);
  if (end >= 0) vectorOut = out;
  return end;
}

/** {@link scanVector} into `out[at .. at + n)` (written even when it fails: the caller clears it). */
function scanVectorInto(
  b: Buffer,
  s: number,
  e: number,
  n: number,
  multiline: boolean,
  out: Float32Array,
  at: number,
): number {
  let p = s;
  while (p < e && b[p]! <= 0x20 && isWs(b[p]!, multiline)) p++;
  if (p >= e || b[p] !== 0x5b) {
    reason = `expected a JSON array of ${n} numbers such as [0.1,0.2]`;
    return -1;
  }
  p++;
  let k = 0;
  while (p < e && b[p]! <= 0x20 && isWs(b[p]!, multiline)) p++;
  if (p < e && b[p] === 0x5d) {
    p++;
  } else {
    while (true) {
      while (p < e && b[p]! <= 0x20 && isWs(b[p]!, multiline)) p++;
      const t = scanFloat32(b, p, e);
      if (t < 0) {
        reason =
          numberFailure === "range"
            ? `element ${k + 1} is out of the float32 range`
            : `element ${k + 1} is not a number`;
        return -1;
      }
      const v = OUT[0]!;
      const r = Math.fround(v);
      if (r - r !== 0 && v - v === 0) {
        reason = `element ${k + 1} is out of the float32 range`;
        return -1;
      }
      if (k < n) out[at + k] = r;
      k++;
      p = t;
      while (p < e && b[p]! <= 0x20 && isWs(b[p]!, multiline)) p++;
      if (p >= e) {
        reason = "the array is not closed";
        return -1;
      }
      const c = b[p]!;
      if (c === 0x2c) {
        p++;
        continue;
      }
      if (c === 0x5d) {
        p++;
        break;
      }
      reason = `unexpected ${JSON.stringify(String.fromCharCode(c))} after element ${k}`;
      return -1;
    }
  }
  while (p < e && b[p]! <= 0x20 && isWs(b[p]!, multiline)) p++;
  if (k !== n) {
    reason = `has ${k} element${k === 1 ? "" : "s"}, expected ${n}`;
    return -1;
  }
  return p;
}

/** A whole field as a float32[n]; undefined (and `reason`) when it is not one. */
export function parseVectorBytes(b: Buffer, s: number, e: number, n: number): Float32Array | undefined {
  const end = scanVector(b, s, e, n, true);
  if (end === e) return vectorOut;
  if (end >= 0) reason = "text after the closing bracket";
  return undefined;
}

function isWs(c: number, multiline: boolean): boolean {
  return c === 0x20 || c === 0x09 || (multiline && (c === 0x0a || c === 0x0d));
}

/**
 * A float32 or float64 feature's value from a number (undefined: the input was not one), rounded
 * to float32 for float32; a finite number beyond the type's range is refused, not made infinite.
 */
export function floatValue(
  x: number | undefined,
  float32: boolean,
  type: string,
  fail: (why: string) => Error,
): number {
  if (x === undefined) throw fail(`is not a ${type}`);
  const r = float32 ? Math.fround(x) : x;
  if (!Number.isFinite(r) && Number.isFinite(x)) throw fail(`is out of the ${type} range`);
  return r;
}

/** A float32[N] feature's value from N elements, each a number by `element` (undefined: not one). */
export function float32Vector(
  v: ArrayLike<unknown>,
  length: number,
  type: string,
  element: (e: unknown) => number | undefined,
  fail: (why: string) => Error,
): Float32Array {
  if (v.length !== length) throw fail(`is not a ${type}: has ${v.length} elements, expected ${length}`);
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) {
    const x = element(v[i]);
    if (x === undefined) throw fail(`is not a ${type}: element ${i + 1} is not a number`);
    const r = Math.fround(x);
    if (!Number.isFinite(r) && Number.isFinite(x))
      throw fail(`is not a ${type}: element ${i + 1} is out of the float32 range`);
    out[i] = r;
  }
  return out;
}

function jsonFloat(v: unknown): number | undefined {
  if (typeof v === "number") return v;
  if (v === "NaN") return NaN;
  if (v === "Infinity") return Infinity;
  if (v === "-Infinity") return -Infinity;
  return undefined;
}

function matchAscii(b: Uint8Array, s: number, e: number, word: string): boolean {
  if (e - s !== word.length) return false;
  for (let i = 0; i < word.length; i++) if (b[s + i] !== word.charCodeAt(i)) return false;
  return true;
}

function matchAsciiLower(b: Uint8Array, s: number, word: string): boolean {
  for (let i = 0; i < word.length; i++) if ((b[s + i]! | 0x20) !== word.charCodeAt(i)) return false;
  return true;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Whether `s` is valid UTF-16 (no lone surrogate), so that it has a UTF-8 form. */
export function isWellFormed(s: string): boolean {
  return !LONE_SURROGATE.test(s);
}

function keyTooLong(bytes: number): string {
  return `the key is ${bytes} UTF-8 bytes long, more than ${MAX_KEY_BYTES}`;
}

const SHOW_CHARS = 60;

/** The cell's text for a message: JSON-quoted, cut at {@link SHOW_CHARS} characters. */
function quoteCell(rec: CsvRecord, j: number): string {
  const s = rec.starts[j]!;
  const e = rec.ends[j]!;
  const cut = Math.min(e, s + SHOW_CHARS * 4);
  let text = rec.buf.toString("utf8", s, cut);
  if ((rec.flags[j]! & FIELD_ESCAPED) !== 0) text = text.replaceAll('""', '"');
  if (text.length > SHOW_CHARS || cut < e) text = text.slice(0, SHOW_CHARS) + "…";
  return JSON.stringify(text);
}

/** A value for an error message: as JSON (through `replacer`), cut short. */
export function describeJson(v: unknown, replacer?: (key: string, value: unknown) => unknown): string {
  let text: string;
  if (v === undefined) return "undefined";
  if (typeof v === "string") {
    text = JSON.stringify(v.length > SHOW_CHARS ? v.slice(0, SHOW_CHARS) + "…" : v);
  } else {
    text = JSON.stringify(v, replacer) ?? String(v);
    if (text.length > SHOW_CHARS) text = text.slice(0, SHOW_CHARS) + "…";
  }
  return text;
}

function listNames(names: readonly string[]): string {
  const shown = names.slice(0, 20).map((n) => JSON.stringify(n));
  return shown.join(", ") + (names.length > 20 ? `, … (${names.length} in all)` : "");
}
