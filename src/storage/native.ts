/**
 * The native part of the read path (native/strata_native.cc, built by `npm run build`):
 * `mapSegmentFile` maps a file without charging V8's external-memory budget, and `BatchLocator`
 * looks a batch of keys up in one call, with the same checks as SegmentView.find. The JS lookup
 * (VersionSnapshot.locate) stays the reference; tests compare the two on the same segments.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { endianness } from "node:os";
import type { SegmentView } from "../format/segment-view.js";
import type { KeyBatch } from "../format/key-batch.js";

/** An opaque native handle. */
type PreparedVersion = { readonly __prepared: unique symbol };

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
  copyRanges(target: Uint8Array, sources: Uint8Array[], ranges: Int32Array, count: number): void;
  crc32Async(view: Uint8Array, callback: (crc: number) => void): void;
}

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

export const enum BatchStatus {
  ABSENT = 0,
  FOUND = 1,
  CORRUPT = 2,
}

/** Per-segment parameters, stride 8 (strata_native.cc `Param`). */
const PARAM_STRIDE = 8;
/** Per-key results, stride 4 (strata_native.cc `Out`). */
const OUT_STRIDE = 4;

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

/**
 * Copies of row bytes into a response buffer, collected while the response is encoded and made in
 * one native call: a Buffer.copy from JS costs 140-210 ns each, more than the bytes it moves.
 */
export class DeferredCopies {
  private ranges = new Int32Array(4 * 256);
  private sources: Buffer[] = [];
  private count = 0;

  /** Forgets pending copies (and the mappings they name). */
  reset(): void {
    this.count = 0;
    this.sources.length = 0;
  }

  /** Copy source[offset, offset + length) to `at` in the target given to `run`. */
  add(at: number, source: Buffer, offset: number, length: number): void {
    let s = this.sources.indexOf(source);
    if (s < 0) s = this.sources.push(source) - 1;
    if (this.count * 4 === this.ranges.length) {
      const grown = new Int32Array(this.ranges.length * 2);
      grown.set(this.ranges);
      this.ranges = grown;
    }
    const r = this.ranges;
    const i = this.count++ * 4;
    r[i] = at;
    r[i + 1] = s;
    r[i + 2] = offset;
    r[i + 3] = length;
  }

  /** Makes every pending copy into `target`, then resets. */
  run(target: Buffer): void {
    if (this.count > 0) native.copyRanges(target, this.sources, this.ranges, this.count);
    this.reset();
  }
}
