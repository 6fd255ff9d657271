/**
 * Encodes GetFeaturesResponse and ScanTableResponse messages straight from mapped segment bytes:
 * the read path of the product. The keys of a request are located in one native call (lookup +
 * CRC check), the rows are measured in a second, one buffer of the exact size is allocated (with
 * the gRPC frame's prefix in front, so that grpc-js sends it without a copy: message-framing.ts),
 * and a third writes the rows into it from the mapping (native/strata_native.cc `writeRows`):
 * float32, float64 and vectors byte for byte, since the segment and protobuf are both
 * little-endian IEEE 754. No per-value objects are created, and nothing in the response refers to
 * the mapping once it is encoded (see storage/mapped-segment.ts on buffer lifetime).
 *
 * Messages (proto/strata/v1/feature_store.proto):
 *   GetFeaturesResponse := 1 request_id, 2 table, 3 version, 4 features*, 5 rows*
 *   ScanTableResponse   := 1 table, 2 version, 3 features*, 4 rows*, 5 resume_token
 *   Row                 := 1 key, 2 status, 3 event_time_ms, 4 values* (TYPED) | 5 packed (PACKED)
 *   FeatureValue        := oneof 1 f32 | 2 f64 | 3 i64 | 4 bool | 5 string | 6 bytes | 7 Float32Vector | 8 null
 */
import type { FeatureSlot, RowLayout } from "../format/row-layout.js";
import type { KeyBatch } from "../format/key-batch.js";
import type { VersionSnapshot } from "../storage/version-snapshot.js";
import { BatchLocations, BatchStatus, type ResponseRows } from "../storage/native.js";
import { Slab } from "./slab.js";
import { RequestTooLargeError } from "./errors.js";
import { FRAME_PREFIX_BYTES, frameMessage } from "./message-framing.js";
import {
  WIRE_VARINT,
  encodeStringFields,
  lenFieldSize,
  tag,
  uint64FieldSize,
  varint64Size,
  writeBytesField,
  writeUint64Field,
  writeVarint64,
} from "./proto-writer.js";

export const enum RowStatus {
  FOUND = 1,
  NOT_FOUND = 2,
  OUTSIDE_MAX_AGE = 3,
  DATA_LOSS = 4,
}

export type Encoding = "typed" | "packed";

/** Feature kinds as the native row writer numbers them (strata_native.cc `Kind`). */
const KINDS = ["float32", "float64", "int64", "bool", "string", "bytes", "float32_vector"] as const;
/** A feature the version does not have: always null (strata_native.cc `kMissing`). */
const MISSING = KINDS.length;
/** Plan header and per-feature stride (strata_native.cc `PlanField`, `FeatureField`). */
const PLAN_HEADER = 3;
const FEATURE_STRIDE = 5;

/** What a request asks for, resolved against a layout once and reused by every response. */
export class ResponsePlan {
  /** The plan as the native row writer reads it: [packed, varStart, n, (kind, index, offset, prevEnd, vectorBytes) x n]. */
  readonly packed: Int32Array;
  /** Fields that are the same in every response of this plan, pre-encoded. */
  readonly getTable: Buffer;
  readonly getFeatures: Buffer;
  readonly scanTable: Buffer;
  readonly scanFeatures: Buffer;

  /**
   * @param layout the rows' layout (the version's)
   * @param features the features answered, in order: `slot` is where a row holds one, null when
   *   the version has no such feature (written before it was added: answered as null)
   */
  constructor(
    readonly table: string,
    readonly layout: RowLayout,
    features: readonly { name: string; slot: FeatureSlot | null }[],
    readonly encoding: Encoding,
  ) {
    this.packed = new Int32Array(PLAN_HEADER + FEATURE_STRIDE * features.length);
    this.packed.set([encoding === "packed" ? 1 : 0, layout.varStart, features.length]);
    features.forEach(({ slot: s }, i) => {
      const at = PLAN_HEADER + FEATURE_STRIDE * i;
      if (s === null) return this.packed.set([MISSING, -1, 0, -1, 0], at);
      const vectorBytes = s.kind.type === "float32_vector" ? 4 * s.kind.length : 0;
      this.packed.set([KINDS.indexOf(s.kind.type), s.index, s.offset, s.prevEndOffset, vectorBytes], at);
    });
    const names = features.map((f) => f.name);
    this.getTable = encodeStringFields(2, [table]);
    this.getFeatures = encodeStringFields(4, names);
    this.scanTable = encodeStringFields(1, [table]);
    this.scanFeatures = encodeStringFields(3, names);
  }
}

export interface EncodeCounters {
  found: number;
  notFound: number;
  outsideMaxAge: number;
  dataLoss: number;
}

/**
 * The encoder of one server: holds scratch space (the event loop runs one encode at a time).
 */
export class ResponseEncoder {
  /** @param maxMessageBytes a response larger than this is refused before it is allocated */
  constructor(private readonly maxMessageBytes = Infinity) {}

  private status = new Uint8Array(256);
  private rowSize = new Int32Array(256);
  private readonly located = new BatchLocations();
  private readonly slab = new Slab();
  /** A response's bytes go back to the slab once HTTP/2 has sent it. */
  private readonly sent = (response: Buffer): void => this.slab.release(response);

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
    snapshot.locateBatch(keys, this.located);
    this.classify(this.located, keys.count, maxAgeMs, nowMs, counters);
    const { getTable, getFeatures } = plan;
    const requestIdSize =
      requestIdLo === 0 && requestIdHi === 0 ? 0 : 1 + varint64Size(requestIdLo, requestIdHi);
    const rows = this.rows(plan, keys, this.located, 5);
    const size =
      requestIdSize +
      getTable.length +
      uint64FieldSize(3, snapshot.version) +
      getFeatures.length +
      this.measure(snapshot, rows);
    this.checkSize(size, "ask for fewer keys");
    const buf = this.newMessage(size);
    let pos = 0;
    if (requestIdSize > 0) {
      buf[pos++] = tag(1, WIRE_VARINT);
      pos = writeVarint64(buf, pos, requestIdLo, requestIdHi);
    }
    pos += getTable.copy(buf, pos);
    pos = writeUint64Field(buf, pos, 3, snapshot.version);
    pos += getFeatures.copy(buf, pos);
    pos = snapshot.locator.writeRows(rows, buf, pos);
    if (pos !== size) throw new Error(`Response encoder wrote ${pos} bytes, planned ${size}`);
    return buf;
  }

  /**
   * Encodes a ScanTableResponse of rows a scan located (storage/version-scan.ts), ending with
   * its `resume_token`.
   */
  encodeScanChunk(
    snapshot: VersionSnapshot,
    plan: ResponsePlan,
    keys: KeyBatch,
    located: BatchLocations,
    maxAgeMs: number,
    nowMs: number,
    counters: EncodeCounters,
    resumeToken: Buffer,
  ): Buffer {
    this.classify(located, keys.count, maxAgeMs, nowMs, counters);
    const { scanTable, scanFeatures } = plan;
    const rows = this.rows(plan, keys, located, 4);
    const size =
      scanTable.length +
      uint64FieldSize(2, snapshot.version) +
      scanFeatures.length +
      this.measure(snapshot, rows) +
      lenFieldSize(5, resumeToken.length);
    this.checkSize(size, "ask for fewer chunk_rows");
    const buf = this.newMessage(size);
    let pos = scanTable.copy(buf, 0);
    pos = writeUint64Field(buf, pos, 2, snapshot.version);
    pos += scanFeatures.copy(buf, pos);
    pos = snapshot.locator.writeRows(rows, buf, pos);
    pos = writeBytesField(buf, pos, 5, resumeToken, 0, resumeToken.length);
    if (pos !== size) throw new Error(`Scan encoder wrote ${pos} bytes, planned ${size}`);
    return buf;
  }

  /** Refuses (RESOURCE_EXHAUSTED) a response over the limit before its bytes are allocated. */
  private checkSize(size: number, advice: string): void {
    if (size > this.maxMessageBytes)
      throw new RequestTooLargeError(
        `Response would be ${size} bytes; the limit is ${this.maxMessageBytes}: ${advice}`,
      );
  }

  /**
   * `size` bytes for a response, carved with its gRPC frame prefix in front. Its bytes are reused
   * once HTTP/2 has sent it (message-framing.ts): a response must be sent once, and never kept.
   */
  private newMessage(size: number): Buffer {
    return frameMessage(this.slab.buffer(FRAME_PREFIX_BYTES + size), this.sent);
  }

  /** Row statuses from the lookups, with the table's max age applied, counted. */
  private classify(
    located: BatchLocations,
    count: number,
    maxAgeMs: number,
    nowMs: number,
    counters: EncodeCounters,
  ): void {
    if (this.status.length < count) {
      this.status = new Uint8Array(count * 2);
      this.rowSize = new Int32Array(count * 2);
    }
    for (let i = 0; i < count; i++) {
      const found = located.status(i);
      if (found === BatchStatus.FOUND) {
        if (maxAgeMs > 0 && nowMs - located.eventTimeMs(i) > maxAgeMs) {
          this.status[i] = RowStatus.OUTSIDE_MAX_AGE;
          counters.outsideMaxAge++;
        } else {
          this.status[i] = RowStatus.FOUND;
          counters.found++;
        }
      } else if (found === BatchStatus.ABSENT) {
        this.status[i] = RowStatus.NOT_FOUND;
        counters.notFound++;
      } else {
        this.status[i] = RowStatus.DATA_LOSS;
        counters.dataLoss++;
      }
    }
  }

  private rows(plan: ResponsePlan, keys: KeyBatch, located: BatchLocations, field: number): ResponseRows {
    return { plan: plan.packed, keys, status: this.status, located, rowSize: this.rowSize, field };
  }

  private measure(snapshot: VersionSnapshot, rows: ResponseRows): number {
    const size = snapshot.locator.measureRows(rows);
    if (size < 0)
      throw new Error(`A row of table "${snapshot.table}" version ${snapshot.version} is malformed`);
    return size;
  }
}
