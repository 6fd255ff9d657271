/**
 * The native part of the read path (native/strata_native.cc, built by `npm run build`):
 * `mapSegmentFile` maps a file without charging V8's external-memory budget, and `BatchLocator`
 * looks a batch of keys up in one call, with the same checks as SegmentView.find. The JS lookup
 * (VersionSnapshot.locate) stays the reference; tests compare the two on the same segments.
 * `encodeCsvLines` is the CSV import's hot loop (importer/native-lines.ts); `placeIndexEntries`
 * and `crc32` speed up writing segments.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { endianness } from "node:os";
import type { SegmentView } from "../format/segment-view.js";
import type { KeyBatch } from "../format/key-batch.js";
import type { PlaceEntries } from "../format/segment-index.js";
import type { EncoderNative } from "../format/segment-encoder.js";

/** An opaque native handle. */
type PreparedVersion = { readonly __prepared: unique symbol };

/** The rows of a response: what measureRows and writeRows read (strata_native.cc `RowsArgs`). */
type RowsArgs = [
  version: PreparedVersion,
  plan: Int32Array,
  keys: Uint8Array,
  bounds: Uint32Array,
  count: number,
  status: Uint8Array,
  located: Int32Array,
  eventTimes: Float64Array,
  rowSize: Int32Array,
];

interface StrataNative {
  map(path: string): SharedArrayBuffer;
  /** Packs a version's segments (probe order) for locateBatch. */
  prepare(
    segments: Uint8Array[],
    params: Uint32Array,
    oneOut: Int32Array,
    oneTime: Float64Array,
  ): PreparedVersion;
  locateOne(version: PreparedVersion, key: string): BatchStatus;
  locateBatch(
    version: PreparedVersion,
    keys: Uint8Array,
    bounds: Uint32Array,
    count: number,
    out: Int32Array,
    eventTimes: Float64Array,
  ): void;
  measureRows(...args: [...RowsArgs, field: number]): number;
  writeRows(...args: [...RowsArgs, field: number, target: Uint8Array, pos: number]): number;
  crc32Async(view: Uint8Array, callback: (crc: number) => void): void;
  encodeCsvLines(...args: CsvLinesArgs): number;
  placeIndexEntries: PlaceEntries;
  crc32(view: Uint8Array, seed: number): number;
}

/** What encodeCsvLines reads and writes (native/csv_encode.cc; importer/native-lines.ts packs `plan`). */
export type CsvLinesArgs = [
  plan: Int32Array,
  cursor: Float64Array,
  src: Uint8Array,
  start: number,
  limit: number,
  bytes: Uint8Array,
  state: Float64Array,
  entries: Uint32Array,
  eventTimes: Float64Array,
];

if (endianness() !== "LE") throw new Error("Strata reads segments in place and needs a little-endian host");

/** The addon built by `npm run build`, found from this module upwards (src/, dist/ or a test build). */
function addonPath(): string {
  const built = join("native", "build", "Release", "strata_native.node");
  const from = dirname(fileURLToPath(import.meta.url));
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, built))) return join(dir, built);
    if (dirname(dir) === dir)
      throw new Error(`Strata's native addon ${built} is not built above ${from}: run npm run build`);
  }
}

const native = createRequire(import.meta.url)(addonPath()) as StrataNative;

/** Maps a whole file read-only, with random-access advice. Throws Node's fs-style errors (code ENOENT…). */
export function mapSegmentFile(path: string): Buffer {
  return Buffer.from(native.map(path));
}

/** CRC-32 (zlib's) of `bytes`, computed on libuv's thread pool: the event loop goes on serving. */
export function crc32OffThread(bytes: Uint8Array): Promise<number> {
  return new Promise((resolve) => native.crc32Async(bytes, resolve));
}

/**
 * Types the plain CSV lines at `src[start..limit)` into segment records (native/csv_encode.cc):
 * returns how many it took; see importer/native-lines.ts.
 */
export function encodeCsvLines(...args: CsvLinesArgs): number {
  return native.encodeCsvLines(...args);
}

/** buildIndex's placement loop (native/segment_index.cc). */
export const placeIndexEntries: PlaceEntries = (words, from, count, slots, state) =>
  native.placeIndexEntries(words, from, count, slots, state);

/**
 * zlib.crc32(data, seed), synchronously, about three times as fast on this machine (carry-less
 * multiply, native/checksum.cc): for checksumming segments as they are written and read back.
 */
export function crc32(data: Uint8Array, seed = 0): number {
  return native.crc32(data, seed);
}

/** The addon's part of a segment encoder (SegmentEncoderOptions.native). */
export const encoderNative: EncoderNative = { placeIndexEntries, crc32 };

export const enum BatchStatus {
  ABSENT = 0,
  FOUND = 1,
  CORRUPT = 2,
}

/** Per-segment parameters, stride 8 (strata_native.cc `Param`). */
const PARAM_STRIDE = 8;
/** Per-key results, stride 4 (strata_native.cc `Out`). */
const OUT_STRIDE = 4;

/** The rows of one response as the encoder holds them (response-encoder.ts). */
export interface ResponseRows {
  /** A ResponsePlan's packed form. */
  plan: Int32Array;
  keys: KeyBatch;
  /** RowStatus per row. */
  status: Uint8Array;
  /** Where each found row is in this version. */
  located: BatchLocations;
  /** Filled by measureRows, read by writeRows. */
  rowSize: Int32Array;
  /** The repeated field the rows are (5 in GetFeaturesResponse, 4 in ScanTableResponse). */
  field: number;
}

/** One version's segments, packed once for the native lookup. */
export class BatchLocator {
  /** Keeps the mappings alive as long as the native handle that points into them. */
  private readonly bytes: Buffer[];
  private readonly prepared: PreparedVersion;
  /** Results of `locateOne` (key 0), shared with the native side: never used for a batch. */
  readonly one = new BatchLocations();

  /** @param probeOrder newest segment first */
  constructor(readonly probeOrder: readonly SegmentView[]) {
    this.bytes = probeOrder.map((s) => s.bytes);
    const params = new Uint32Array(probeOrder.length * PARAM_STRIDE);
    probeOrder.forEach((s, i) => {
      const h = s.header;
      params.set(
        [h.indexOffset, h.slotCount, h.hashSeed >>> 0, h.maxProbe, s.salt, s.dataEnd],
        i * PARAM_STRIDE,
      );
    });
    this.prepared = native.prepare(this.bytes, params, this.one.raw, this.one.eventTimes);
  }

  /** Looks up one key; its results are `one`'s key 0 (valid until the next call). */
  locateOne(key: string): BatchStatus {
    return native.locateOne(this.prepared, key);
  }

  /** Sizes the rows of a response: each row's size goes to `rows.rowSize`; returns their total, or -1 when a row is malformed. */
  measureRows(rows: ResponseRows): number {
    return native.measureRows(...this.rowsArgs(rows));
  }

  /** Writes the rows measureRows sized into `target` at `pos`; returns the end. */
  writeRows(rows: ResponseRows, target: Buffer, pos: number): number {
    return native.writeRows(...this.rowsArgs(rows), target, pos);
  }

  private rowsArgs(r: ResponseRows): [...RowsArgs, number] {
    const { keys, located } = r;
    return [
      this.prepared,
      r.plan,
      keys.bytes,
      keys.bounds,
      keys.count,
      r.status,
      located.raw,
      located.eventTimes,
      r.rowSize,
      r.field,
    ];
  }

  /** Looks up every key of `keys`; results in `out` (valid until its next use). */
  locate(keys: KeyBatch, out: BatchLocations): void {
    out.ensure(keys.count);
    native.locateBatch(this.prepared, keys.bytes, keys.bounds, keys.count, out.raw, out.eventTimes);
  }
}

/** Results of a batch lookup, reused across batches. */
export class BatchLocations {
  raw = new Int32Array(256 * OUT_STRIDE);
  eventTimes = new Float64Array(256);

  ensure(count: number): void {
    if (this.eventTimes.length >= count) return;
    const cap = Math.max(count, this.eventTimes.length * 2);
    this.raw = new Int32Array(cap * OUT_STRIDE);
    this.eventTimes = new Float64Array(cap);
  }

  /** Fills result `i` by hand (a scan locates its rows itself). */
  set(
    i: number,
    status: BatchStatus,
    segment: number,
    valueOffset: number,
    valueLength: number,
    eventTimeMs: number,
  ): void {
    const r = this.raw;
    r[i * OUT_STRIDE] = status;
    r[i * OUT_STRIDE + 1] = segment;
    r[i * OUT_STRIDE + 2] = valueOffset;
    r[i * OUT_STRIDE + 3] = valueLength;
    this.eventTimes[i] = eventTimeMs;
  }

  status(i: number): BatchStatus {
    return this.raw[i * OUT_STRIDE]! as BatchStatus;
  }
  /** Index into the probe order of the segment that answered (FOUND or CORRUPT), else -1. */
  segment(i: number): number {
    return this.raw[i * OUT_STRIDE + 1]!;
  }
  /** Absolute offset of the row bytes in the segment. */
  valueOffset(i: number): number {
    return this.raw[i * OUT_STRIDE + 2]!;
  }
  valueLength(i: number): number {
    return this.raw[i * OUT_STRIDE + 3]!;
  }
  eventTimeMs(i: number): number {
    return this.eventTimes[i]!;
  }
}
