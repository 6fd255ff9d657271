/**
 * The row layout: how a row's feature values sit in a record's value bytes (and in the PACKED
 * encoding of the gRPC API, which is these bytes as they are).
 *
 *   row    := nulls fixed var
 *   nulls  := ceil(F / 8) bytes, bit (i % 8) of byte (i / 8) set = feature i is null;
 *             zero padded to a multiple of 8
 *   fixed  := one slot per feature, at an offset fixed by the schema, largest alignment first so
 *             every slot is naturally aligned (the row starts 8-aligned in the segment):
 *               8 bytes: float64 (IEEE 754), int64 (two's complement)
 *               4 bytes: float32; float32[N] (4N bytes); string and bytes (u32 END of the value
 *                        in var, relative to var's start: a value spans [END of the previous
 *                        string/bytes feature in schema order, or 0; its END))
 *               1 byte:  bool (0 or 1)
 *             a null feature's slot is zero (a null string/bytes slot repeats the previous END)
 *   var    := the string (UTF-8) and bytes values, in schema order
 *
 * Numeric features and vectors therefore sit at constant offsets: a reader can take any of them
 * without parsing the rest, and a whole row is one slice.
 */
import { featureKinds, type FeatureKind, type FeatureValue, type TableSchema } from "./schema.js";
import { InvalidValueError } from "../shared/errors.js";
import { RecordCorruptError } from "./errors.js";

export interface FeatureSlot {
  readonly index: number;
  readonly name: string;
  readonly kind: FeatureKind;
  /** Offset of the slot within the row. */
  readonly offset: number;
  /** For string/bytes: offset of the previous var feature's END slot, or -1 (start at 0). */
  readonly prevEndOffset: number;
}

export interface RowLayout {
  readonly slots: readonly FeatureSlot[];
  readonly nullBytes: number;
  /** Offset of var within the row = length of nulls + fixed. */
  readonly varStart: number;
  /** True when the schema has no string or bytes feature: every row has the same length. */
  readonly fixedOnly: boolean;
}

const slotWidth = (k: FeatureKind): number => {
  switch (k.type) {
    case "float64":
    case "int64":
      return 8;
    case "float32":
    case "string":
    case "bytes":
      return 4;
    case "float32_vector":
      return 4 * k.length;
    case "bool":
      return 1;
  }
};
const slotAlign = (k: FeatureKind): number => Math.min(slotWidth(k), k.type === "float32_vector" ? 4 : 8);

export function rowLayout(schema: Pick<TableSchema, "features">): RowLayout {
  const kinds = featureKinds(schema);
  const nullBytes = Math.ceil(kinds.length / 8 / 8) * 8;
  const order = kinds
    .map((kind, index) => ({ kind, index }))
    .sort((a, b) => slotAlign(b.kind) - slotAlign(a.kind) || a.index - b.index);
  const offsets = new Array<number>(kinds.length);
  let at = nullBytes;
  for (const { kind, index } of order) {
    offsets[index] = at;
    at += slotWidth(kind);
  }
  let prevEnd = -1;
  const slots = kinds.map((kind, index): FeatureSlot => {
    const slot = {
      index,
      name: schema.features[index]!.name,
      kind,
      offset: offsets[index]!,
      prevEndOffset: -1,
    };
    if (kind.type === "string" || kind.type === "bytes") {
      slot.prevEndOffset = prevEnd;
      prevEnd = slot.offset;
    }
    return slot;
  });
  return { slots, nullBytes, varStart: at, fixedOnly: prevEnd === -1 };
}

/** Bytes the row takes; also checks each value against its feature's type. */
export function measureRow(layout: RowLayout, values: readonly FeatureValue[]): number {
  if (values.length !== layout.slots.length) {
    throw new InvalidValueError(
      `Row has ${values.length} values, the schema has ${layout.slots.length} features`,
    );
  }
  let varBytes = 0;
  for (const slot of layout.slots) {
    const v = values[slot.index]!;
    if (v === null) continue;
    checkValue(slot, v);
    if (slot.kind.type === "string") varBytes += Buffer.byteLength(v as string, "utf8");
    else if (slot.kind.type === "bytes") varBytes += (v as Uint8Array).length;
  }
  return layout.varStart + varBytes;
}

/**
 * Writes the row at `at` (which must be 8-aligned within `out`), returning the bytes written.
 * `out` must be zeroed over the row: null slots are not written. Values must have been measured.
 * `outFloats`, a Float32Array over the same memory as `out`, lets vectors be copied without
 * creating a view per row (`out.byteOffset` must then be 4-aligned).
 */
export function writeRow(
  layout: RowLayout,
  values: readonly FeatureValue[],
  out: Buffer,
  at: number,
  outFloats?: Float32Array,
): number {
  let varAt = at + layout.varStart;
  for (const slot of layout.slots) {
    const v = values[slot.index]!;
    const o = at + slot.offset;
    if (v === null) {
      out[at + (slot.index >> 3)]! |= 1 << (slot.index & 7);
      if (slot.kind.type === "string" || slot.kind.type === "bytes")
        out.writeUInt32LE(varAt - at - layout.varStart, o);
      continue;
    }
    switch (slot.kind.type) {
      case "float32":
        out.writeFloatLE(v as number, o);
        break;
      case "float64":
        out.writeDoubleLE(v as number, o);
        break;
      case "int64":
        out.writeBigInt64LE(v as bigint, o);
        break;
      case "bool":
        out[o] = v ? 1 : 0;
        break;
      case "float32_vector": {
        const vec = v as Float32Array;
        if (outFloats) outFloats.set(vec, o >> 2);
        else out.set(new Uint8Array(vec.buffer, vec.byteOffset, vec.byteLength), o);
        break;
      }
      case "string":
        varAt += out.write(v as string, varAt, "utf8");
        out.writeUInt32LE(varAt - at - layout.varStart, o);
        break;
      case "bytes": {
        const bytes = v as Uint8Array;
        out.set(bytes, varAt);
        varAt += bytes.length;
        out.writeUInt32LE(varAt - at - layout.varStart, o);
        break;
      }
    }
  }
  return varAt - at;
}

/** Encodes a row into a fresh buffer. */
export function encodeRow(layout: RowLayout, values: readonly FeatureValue[]): Buffer {
  const out = Buffer.alloc(measureRow(layout, values));
  writeRow(layout, values, out, 0);
  return out;
}

export function isNull(row: Buffer, at: number, index: number): boolean {
  return (row[at + (index >> 3)]! & (1 << (index & 7))) !== 0;
}

/**
 * Reads one feature of the row at [at, at + length) in `row`. Values are copies: they outlive the
 * mapping the row may live in. Throws RecordCorruptError when a var END points outside the row.
 */
export function readFeature(
  layout: RowLayout,
  slot: FeatureSlot,
  row: Buffer,
  at: number,
  length: number,
): FeatureValue {
  if (isNull(row, at, slot.index)) return null;
  const o = at + slot.offset;
  switch (slot.kind.type) {
    case "float32":
      return row.readFloatLE(o);
    case "float64":
      return row.readDoubleLE(o);
    case "int64":
      return row.readBigInt64LE(o);
    case "bool":
      return row[o] !== 0;
    case "float32_vector": {
      const out = new Float32Array(slot.kind.length);
      new Uint8Array(out.buffer).set(row.subarray(o, o + out.byteLength));
      return out;
    }
    case "string":
    case "bytes": {
      const start = slot.prevEndOffset < 0 ? 0 : row.readUInt32LE(at + slot.prevEndOffset);
      const end = row.readUInt32LE(o);
      if (start > end || layout.varStart + end > length) {
        throw new RecordCorruptError(`Row var bounds [${start}, ${end}) lie outside the row`, at);
      }
      const s = at + layout.varStart + start;
      const e = at + layout.varStart + end;
      return slot.kind.type === "string"
        ? row.toString("utf8", s, e)
        : Uint8Array.prototype.slice.call(row, s, e);
    }
  }
}

/** Decodes every feature of a row. */
export function decodeRow(layout: RowLayout, row: Buffer, at = 0, length = row.length - at): FeatureValue[] {
  if (length < layout.varStart)
    throw new RecordCorruptError(`Row of ${length} bytes is shorter than its fixed part`, at);
  return layout.slots.map((slot) => readFeature(layout, slot, row, at, length));
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

function fits(kind: FeatureKind, v: NonNullable<FeatureValue>): boolean {
  switch (kind.type) {
    case "float32":
    case "float64":
      return typeof v === "number";
    case "int64":
      return typeof v === "bigint" && v >= INT64_MIN && v <= INT64_MAX;
    case "bool":
      return typeof v === "boolean";
    case "string":
      return typeof v === "string";
    case "bytes":
      return v instanceof Uint8Array;
    case "float32_vector":
      return v instanceof Float32Array && v.length === kind.length;
  }
}

function checkValue(slot: FeatureSlot, v: NonNullable<FeatureValue>): void {
  const kind = slot.kind;
  if (!fits(kind, v)) {
    const want = kind.type === "float32_vector" ? `float32[${kind.length}]` : kind.type;
    throw new InvalidValueError(`Feature "${slot.name}" expects ${want}, got ${describe(v)}`, slot.name);
  }
}

function describe(v: unknown): string {
  if (v instanceof Float32Array) return `float32[${v.length}]`;
  if (v instanceof Uint8Array) return "bytes";
  return typeof v;
}
