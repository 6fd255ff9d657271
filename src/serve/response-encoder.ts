/**
 * Encodes GetFeaturesResponse and ScanTableResponse messages straight from mapped segment bytes:
 * the read path of the product. Each key is located once (lookup + CRC check), row sizes are
 * summed, one buffer of the exact size is allocated, and values are copied from the mapping into
 * it: float32, float64 and vectors byte for byte, since the segment and protobuf are both
 * little-endian IEEE 754. No per-value objects are created, and nothing in the response refers
 * to the mapping once it is encoded (see storage/mapped-segment.ts on buffer lifetime).
 *
 * Messages (proto/strata/v1/feature_store.proto):
 *   GetFeaturesResponse := 1 request_id, 2 table, 3 version, 4 features*, 5 rows*
 *   ScanTableResponse   := 1 table, 2 version, 3 features*, 4 rows*
 *   Row                 := 1 key, 2 status, 3 event_time_ms, 4 values* (TYPED) | 5 packed (PACKED)
 *   FeatureValue        := oneof 1 f32 | 2 f64 | 3 i64 | 4 bool | 5 string | 6 bytes | 7 Float32Vector | 8 null
 */
import type { FeatureSlot, RowLayout } from "../format/row-layout.js";
import { KeyBatchBuilder, keyLength, type KeyBatch } from "../format/key-batch.js";
import { newRowLocation, type VersionSnapshot } from "../storage/version-snapshot.js";
import { BatchLocations, BatchStatus, DeferredCopies } from "../storage/native.js";
import { Slab } from "./slab.js";
import {
  WIRE_FIXED32,
  WIRE_FIXED64,
  WIRE_LEN,
  WIRE_VARINT,
  encodeStringFields,
  lenFieldSize,
  writeBytesField,
  tag,
  uint64FieldSize,
  varint32Size,
  varint64Size,
  writeUint64Field,
  writeVarint32,
  writeVarint64,
} from "./proto-writer.js";

export const enum RowStatus {
  FOUND = 1,
  NOT_FOUND = 2,
  OUTSIDE_MAX_AGE = 3,
  DATA_LOSS = 4,
}

export type Encoding = "typed" | "packed";

const enum Kind {
  F32,
  F64,
  I64,
  BOOL,
  STRING,
  BYTES,
  VECTOR,
}

interface PlannedFeature {
  kind: Kind;
  index: number;
  offset: number;
  prevEndOffset: number;
  /** Vector byte length (4N). */
  vectorBytes: number;
}

/** What a request asks for, resolved against a layout once and reused by every response. */
export class ResponsePlan {
  readonly features: PlannedFeature[];
  /** Fields that are the same in every response of this plan, pre-encoded. */
  readonly getTable: Buffer;
  readonly getFeatures: Buffer;
  readonly scanTable: Buffer;
  readonly scanFeatures: Buffer;

  constructor(
    readonly table: string,
    readonly layout: RowLayout,
    slots: readonly FeatureSlot[],
    readonly encoding: Encoding,
  ) {
    this.features = slots.map((s) => ({
      kind: kindOf(s),
      index: s.index,
      offset: s.offset,
      prevEndOffset: s.prevEndOffset,
      vectorBytes: s.kind.type === "float32_vector" ? 4 * s.kind.length : 0,
    }));
    const names = slots.map((s) => s.name);
    this.getTable = encodeStringFields(2, [table]);
    this.getFeatures = encodeStringFields(4, names);
    this.scanTable = encodeStringFields(1, [table]);
    this.scanFeatures = encodeStringFields(3, names);
  }
}

function kindOf(s: FeatureSlot): Kind {
  switch (s.kind.type) {
    case "float32":
      return Kind.F32;
    case "float64":
      return Kind.F64;
    case "int64":
      return Kind.I64;
    case "bool":
      return Kind.BOOL;
    case "string":
      return Kind.STRING;
    case "bytes":
      return Kind.BYTES;
    case "float32_vector":
      return Kind.VECTOR;
  }
}

/** Rows located for one response; arrays grow and are reused by the encoder. */
class RowScratch {
  status = new Uint8Array(0);
  /** The mapped segment each found row lies in. */
  segment: (Buffer | null)[] = [];
  valueOffset = new Int32Array(0);
  valueLength = new Int32Array(0);
  eventTimeMs = new Float64Array(0);
  rowSize = new Int32Array(0);

  ensure(n: number): void {
    if (this.status.length >= n) return;
    const cap = Math.max(n, this.status.length * 2, 64);
    this.status = new Uint8Array(cap);
    this.segment = new Array<Buffer | null>(cap).fill(null);
    this.valueOffset = new Int32Array(cap);
    this.valueLength = new Int32Array(cap);
    this.eventTimeMs = new Float64Array(cap);
    this.rowSize = new Int32Array(cap);
  }
}

export interface EncodeCounters {
  found: number;
  notFound: number;
  outsideMaxAge: number;
  dataLoss: number;
}

const TAG_STATUS = tag(2, WIRE_VARINT);
const TAG_EVENT_TIME = tag(3, WIRE_VARINT);
const TAG_VALUES = tag(4, WIRE_LEN);
const TAG_PACKED = tag(5, WIRE_LEN);

/**
 * The encoder of one server: holds scratch space (the event loop runs one encode at a time).
 */
export class ResponseEncoder {
  private readonly scratch = new RowScratch();
  private readonly location = newRowLocation();
  private readonly located = new BatchLocations();
  private readonly scanKeys = new KeyBatchBuilder();
  private readonly copies = new DeferredCopies();
  private readonly slab = new Slab();

  /**
   * Encodes a GetFeaturesResponse for `keys` read from `snapshot`. `counters` receives the row
   * statuses (for metrics and for noticing data loss).
   */
  encodeGetFeatures(
    snapshot: VersionSnapshot,
    plan: ResponsePlan,
    requestIdLo: number,
    requestIdHi: number,
    keys: KeyBatch,
    maxAgeMs: number,
    nowMs: number,
    counters: EncodeCounters,
  ): Buffer {
    this.locateAll(snapshot, keys, maxAgeMs, nowMs, counters);
    const { getTable, getFeatures } = plan;
    const requestIdSize =
      requestIdLo === 0 && requestIdHi === 0 ? 0 : 1 + varint64Size(requestIdLo, requestIdHi);
    const size =
      requestIdSize +
      getTable.length +
      uint64FieldSize(3, snapshot.version) +
      getFeatures.length +
      this.sizeRows(plan, keys, 5);
    const buf = this.slab.buffer(size);
    let pos = 0;
    if (requestIdSize > 0) {
      buf[pos++] = tag(1, WIRE_VARINT);
      pos = writeVarint64(buf, pos, requestIdLo, requestIdHi);
    }
    pos += getTable.copy(buf, pos);
    pos = writeUint64Field(buf, pos, 3, snapshot.version);
    pos += getFeatures.copy(buf, pos);
    pos = this.writeRows(buf, pos, plan, keys, 5);
    if (pos !== size) throw new Error(`Response encoder wrote ${pos} bytes, planned ${size}`);
    return buf;
  }

  /** Encodes a ScanTableResponse of rows already located by the caller (keys with their locations). */
  encodeScanChunk(
    snapshot: VersionSnapshot,
    plan: ResponsePlan,
    keyTexts: readonly string[],
    locate: (i: number, out: typeof this.location) => void,
    maxAgeMs: number,
    nowMs: number,
    counters: EncodeCounters,
  ): Buffer {
    const s = this.scratch;
    s.ensure(keyTexts.length);
    const loc = this.location;
    for (let i = 0; i < keyTexts.length; i++) {
      locate(i, loc);
      const status =
        loc.status === "found"
          ? BatchStatus.FOUND
          : loc.status === "absent"
            ? BatchStatus.ABSENT
            : BatchStatus.CORRUPT;
      this.record(i, status, loc.segment?.bytes ?? null, loc.valueOffset, loc.valueLength, loc.eventTimeMs);
      this.count(i, maxAgeMs, nowMs, counters);
    }
    const keys = this.scanKeys.set(keyTexts);
    const { scanTable, scanFeatures } = plan;
    const size =
      scanTable.length +
      uint64FieldSize(2, snapshot.version) +
      scanFeatures.length +
      this.sizeRows(plan, keys, 4);
    const buf = this.slab.buffer(size);
    let pos = scanTable.copy(buf, 0);
    pos = writeUint64Field(buf, pos, 2, snapshot.version);
    pos += scanFeatures.copy(buf, pos);
    pos = this.writeRows(buf, pos, plan, keys, 4);
    if (pos !== size) throw new Error(`Scan encoder wrote ${pos} bytes, planned ${size}`);
    return buf;
  }

  private locateAll(
    snapshot: VersionSnapshot,
    keys: KeyBatch,
    maxAgeMs: number,
    nowMs: number,
    counters: EncodeCounters,
  ): void {
    this.scratch.ensure(keys.count);
    const located = this.located;
    snapshot.locateBatch(keys, located);
    const segments = snapshot.probeOrder;
    for (let i = 0; i < keys.count; i++) {
      const seg = located.segment(i);
      this.record(
        i,
        located.status(i),
        seg < 0 ? null : segments[seg]!.bytes,
        located.valueOffset(i),
        located.valueLength(i),
        located.eventTimeMs(i),
      );
      this.count(i, maxAgeMs, nowMs, counters);
    }
  }

  private record(
    i: number,
    status: BatchStatus,
    segment: Buffer | null,
    valueOffset: number,
    valueLength: number,
    eventTimeMs: number,
  ): void {
    const s = this.scratch;
    s.segment[i] = segment;
    s.valueOffset[i] = valueOffset;
    s.valueLength[i] = valueLength;
    s.eventTimeMs[i] = eventTimeMs;
    s.status[i] =
      status === BatchStatus.FOUND
        ? RowStatus.FOUND
        : status === BatchStatus.ABSENT
          ? RowStatus.NOT_FOUND
          : RowStatus.DATA_LOSS;
  }

  /** Applies the table's max age to a found row and counts its status. */
  private count(i: number, maxAgeMs: number, nowMs: number, counters: EncodeCounters): void {
    const s = this.scratch;
    switch (s.status[i]) {
      case RowStatus.FOUND:
        if (maxAgeMs > 0 && nowMs - s.eventTimeMs[i]! > maxAgeMs) {
          s.status[i] = RowStatus.OUTSIDE_MAX_AGE;
          counters.outsideMaxAge++;
        } else counters.found++;
        break;
      case RowStatus.NOT_FOUND:
        counters.notFound++;
        break;
      default:
        counters.dataLoss++;
    }
  }

  private sizeRows(plan: ResponsePlan, keys: KeyBatch, field: number): number {
    const s = this.scratch;
    let total = 0;
    for (let i = 0; i < keys.count; i++) {
      const status = s.status[i]!;
      let row = lenFieldSize(1, keyLength(keys, i)) + 2;
      if (status === RowStatus.FOUND || status === RowStatus.OUTSIDE_MAX_AGE) {
        const t = s.eventTimeMs[i]!;
        row += 1 + varint64Size(t >>> 0, Math.floor(t / 2 ** 32) >>> 0);
      }
      if (status === RowStatus.FOUND) {
        const seg = s.segment[i]!;
        const at = s.valueOffset[i]!;
        if (plan.encoding === "packed") row += lenFieldSize(5, s.valueLength[i]!);
        else for (const f of plan.features) row += valueEntrySize(plan.layout, f, seg, at);
      }
      s.rowSize[i] = row;
      total += lenFieldSize(field, row);
    }
    return total;
  }

  private writeRows(buf: Buffer, pos: number, plan: ResponsePlan, keys: KeyBatch, field: number): number {
    const s = this.scratch;
    const copies = this.copies;
    copies.reset();
    const rowTag = tag(field, WIRE_LEN);
    const { bytes, bounds } = keys;
    for (let i = 0; i < keys.count; i++) {
      const status = s.status[i]!;
      pos = writeVarint32(buf, pos, rowTag);
      pos = writeVarint32(buf, pos, s.rowSize[i]!);
      pos = writeBytesField(buf, pos, 1, bytes, bounds[2 * i]!, bounds[2 * i + 1]!);
      buf[pos++] = TAG_STATUS;
      buf[pos++] = status;
      if (status === RowStatus.FOUND || status === RowStatus.OUTSIDE_MAX_AGE) {
        const t = s.eventTimeMs[i]!;
        buf[pos++] = TAG_EVENT_TIME;
        pos = writeVarint64(buf, pos, t >>> 0, Math.floor(t / 2 ** 32) >>> 0);
      }
      if (status !== RowStatus.FOUND) continue;
      const seg = s.segment[i]!;
      const at = s.valueOffset[i]!;
      if (plan.encoding === "packed") {
        const n = s.valueLength[i]!;
        buf[pos++] = TAG_PACKED;
        pos = writeVarint32(buf, pos, n);
        copies.add(pos, seg, at, n);
        pos += n;
      } else {
        for (const f of plan.features) pos = writeValueEntry(buf, pos, plan.layout, f, seg, at, copies);
      }
    }
    copies.run(buf);
    return pos;
  }
}

const isNull = (seg: Buffer, at: number, index: number): boolean =>
  (seg[at + (index >> 3)]! & (1 << (index & 7))) !== 0;

function varRange(layout: RowLayout, f: PlannedFeature, seg: Buffer, at: number): [number, number] {
  const start = f.prevEndOffset < 0 ? 0 : seg.readUInt32LE(at + f.prevEndOffset);
  const end = seg.readUInt32LE(at + f.offset);
  return [at + layout.varStart + start, at + layout.varStart + end];
}

/** Size of one `values` entry (tag 4, length, FeatureValue). */
function valueEntrySize(layout: RowLayout, f: PlannedFeature, seg: Buffer, at: number): number {
  let content: number;
  if (isNull(seg, at, f.index)) content = 2;
  else {
    switch (f.kind) {
      case Kind.F32:
        content = 5;
        break;
      case Kind.F64:
        content = 9;
        break;
      case Kind.I64:
        content = 1 + varint64Size(seg.readUInt32LE(at + f.offset), seg.readUInt32LE(at + f.offset + 4));
        break;
      case Kind.BOOL:
        content = 2;
        break;
      case Kind.STRING:
      case Kind.BYTES: {
        const [s, e] = varRange(layout, f, seg, at);
        content = 1 + varint32Size(e - s) + (e - s);
        break;
      }
      case Kind.VECTOR: {
        const inner = 1 + varint32Size(f.vectorBytes) + f.vectorBytes;
        content = 1 + varint32Size(inner) + inner;
        break;
      }
    }
  }
  return 1 + varint32Size(content) + content;
}

/** Copies `n` bytes now when few, else defers them to the batch copy. */
function copyBytes(
  buf: Buffer,
  pos: number,
  seg: Buffer,
  from: number,
  n: number,
  copies: DeferredCopies,
): number {
  if (n > 16) copies.add(pos, seg, from, n);
  else for (let i = 0; i < n; i++) buf[pos + i] = seg[from + i]!;
  return pos + n;
}

function writeValueEntry(
  buf: Buffer,
  pos: number,
  layout: RowLayout,
  f: PlannedFeature,
  seg: Buffer,
  at: number,
  copies: DeferredCopies,
): number {
  buf[pos++] = TAG_VALUES;
  if (isNull(seg, at, f.index)) {
    buf[pos++] = 2;
    buf[pos++] = tag(8, WIRE_VARINT);
    buf[pos++] = 0;
    return pos;
  }
  const o = at + f.offset;
  switch (f.kind) {
    case Kind.F32:
      buf[pos++] = 5;
      buf[pos++] = tag(1, WIRE_FIXED32);
      buf[pos++] = seg[o]!;
      buf[pos++] = seg[o + 1]!;
      buf[pos++] = seg[o + 2]!;
      buf[pos++] = seg[o + 3]!;
      return pos;
    case Kind.F64:
      buf[pos++] = 9;
      buf[pos++] = tag(2, WIRE_FIXED64);
      return copyBytes(buf, pos, seg, o, 8, copies);
    case Kind.I64: {
      const lo = seg.readUInt32LE(o);
      const hi = seg.readUInt32LE(o + 4);
      buf[pos++] = 1 + varint64Size(lo, hi);
      buf[pos++] = tag(3, WIRE_VARINT);
      return writeVarint64(buf, pos, lo, hi);
    }
    case Kind.BOOL:
      buf[pos++] = 2;
      buf[pos++] = tag(4, WIRE_VARINT);
      buf[pos++] = seg[o] ? 1 : 0;
      return pos;
    case Kind.STRING:
    case Kind.BYTES: {
      const [s, e] = varRange(layout, f, seg, at);
      const n = e - s;
      pos = writeVarint32(buf, pos, 1 + varint32Size(n) + n);
      buf[pos++] = tag(f.kind === Kind.STRING ? 5 : 6, WIRE_LEN);
      pos = writeVarint32(buf, pos, n);
      return copyBytes(buf, pos, seg, s, n, copies);
    }
    case Kind.VECTOR: {
      const n = f.vectorBytes;
      const inner = 1 + varint32Size(n) + n;
      pos = writeVarint32(buf, pos, 1 + varint32Size(inner) + inner);
      buf[pos++] = tag(7, WIRE_LEN);
      pos = writeVarint32(buf, pos, inner);
      buf[pos++] = tag(1, WIRE_LEN);
      pos = writeVarint32(buf, pos, n);
      return copyBytes(buf, pos, seg, o, n, copies);
    }
  }
}
