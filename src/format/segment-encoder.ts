/**
 * Encodes a segment (grammar in segment-layout.ts) record by record into a sink, so a segment of
 * any size is built with memory bounded by its index entries (16 bytes per record). The header
 * goes last: the sink reserves the first page and the caller writes the header there at the end.
 */
import { randomBytes } from "node:crypto";
import { crc32 } from "node:zlib";
import { hashKeyRange, type KeyHash } from "./key-hash.js";
import { crc32Range } from "./crc32.js";
import { IndexEntries, buildIndex, type PlaceEntries } from "./segment-index.js";
import {
  FLAG_TOMBSTONE,
  FORMAT_VERSION,
  HEADER_BYTES,
  MAX_KEY_BYTES,
  MAX_RECORD_PAD,
  MAX_SEGMENT_BYTES,
  PAGE_BYTES,
  RECORD_HEADER_BYTES,
  TRAILER_BYTES,
  alignUp,
  encodeHeader,
  encodeTrailer,
  recordLength,
  recordPad,
  recordSeed,
  saltOf,
  type SegmentHeader,
  type SegmentKind,
} from "./segment-layout.js";
import { measureRow, writeRow, type RowLayout } from "./row-layout.js";
import type { FeatureValue } from "./schema.js";
import { InvalidValueError } from "../shared/errors.js";

/** Where encoded bytes go, in file order from offset HEADER_BYTES. */
export interface SegmentSink {
  /** Appends bytes. The chunk is reused after the call returns: copy it or write it now. */
  append(chunk: Uint8Array): void;
  /** Reads back `length` bytes at absolute file offset `offset` (already appended). */
  readAt(offset: number, length: number): Buffer;
}

/** A row's values in schema order, or the row already encoded by row-layout.ts's writeRow. */
export type RowContent = readonly FeatureValue[] | Uint8Array;

export interface SegmentEncoderOptions {
  kind: SegmentKind;
  tableName: string;
  schemaHash: string;
  layout: RowLayout;
  /** The base a delta is built on. */
  baseUuid?: string | null;
  segmentUuid?: string;
  hashSeed?: number;
  /** Faster equivalents in native code (storage's file writer passes the addon's); same bytes. */
  native?: EncoderNative;
}

/** What the encoder can do faster in native code (src/storage/native.ts has the addon's). */
export interface EncoderNative {
  /** buildIndex's placement loop. */
  placeIndexEntries: PlaceEntries;
  /** zlib.crc32. */
  crc32(data: Uint8Array, seed: number): number;
}

/**
 * A place to encode records into directly (a parser typing fields straight into the record, see
 * importer/import-reader.ts): {@link reserve} room, write the key at `at + RECORD_HEADER_BYTES` and
 * the row right after its 8-aligned end into {@link bytes} (zeroed), then {@link commit}. Rows
 * that come as values go through {@link add}. The views share the memory of `bytes` and change
 * only on `reserve`.
 */
export interface RecordTarget {
  /** Room for a record of at most `maxLength` bytes; returns its offset in `bytes`. */
  reserve(maxLength: number): number;
  readonly bytes: Buffer;
  readonly floats: Float32Array;
  readonly doubles: Float64Array;
  readonly words: Int32Array;
  /** Frames the record at `at` whose key and row were written: header, CRC, index entry. */
  commit(at: number, keyLen: number, valueLen: number, eventTimeMs: number): void;
  add(key: string | Buffer, eventTimeMs: number, values: RowContent | null): void;
  /**
   * Hands the current chunk and framing state to a native writer of whole records; until
   * {@link closeBatch}, nothing else may be called.
   */
  openBatch(): RecordBatch;
  /** Takes in the records the native writer appended (its `state`). */
  closeBatch(): void;
}

/**
 * A {@link RecordTarget}'s current chunk and framing state, shared with a native writer of whole
 * records (native/csv_encode.cc): it appends records at `state[BATCH_USED]` exactly as
 * {@link RecordTarget.commit} would frame them (header, CRC, index entry in `entries`, event time
 * in `eventTimes`), never past `state[BATCH_END]`, and stops where `reserve` would have to flush,
 * move to a new part (`state[BATCH_ESTIMATE_LIMIT]`, checked against {@link SegmentEncoder.estimatedBytes})
 * or fail. `entries` and `eventTimes` have room for every record that fits in the chunk.
 */
export interface RecordBatch {
  readonly bytes: Buffer;
  readonly state: Float64Array;
  /** Index entries, 4 words each (see IndexEntries); the batch's go from entry `state[BATCH_COUNT]`. */
  readonly entries: Uint32Array;
  readonly eventTimes: Float64Array;
}

/** Slots of {@link RecordBatch.state} (the native side's `Batch`): the encoder's fields of the same names. */
export const BATCH_USED = 0;
export const BATCH_END = 1;
export const BATCH_OFFSET = 2;
export const BATCH_SALT = 3;
export const BATCH_SEED = 4;
export const BATCH_COUNT = 5;
export const BATCH_MIN_EVENT_TIME = 6;
export const BATCH_MAX_EVENT_TIME = 7;
/** A record is appended only while the segment's estimatedBytes is at most this. */
export const BATCH_ESTIMATE_LIMIT = 8;
const BATCH_SLOTS = 9;
/** The shortest record: header, a key of 1 to 8 bytes, a row of at least one 8-byte null block. */
const MIN_RECORD_BYTES = RECORD_HEADER_BYTES + 8 + 8;

/** A source of rows that can encode itself into a {@link RecordTarget} (what an import reader offers). */
export const ENCODE_INTO: unique symbol = Symbol("strata.encodeInto");
export interface EncodableRows {
  /** Encodes every row into `target`, in order; `onProgress` gets the rows so far now and then. */
  [ENCODE_INTO](target: RecordTarget, layout: RowLayout, onProgress?: (rows: number) => void): Promise<void>;
}

export function isEncodableRows(x: unknown): x is EncodableRows {
  return (
    typeof x === "object" && x !== null && typeof (x as Partial<EncodableRows>)[ENCODE_INTO] === "function"
  );
}

export interface EncodedSegmentEnd {
  header: SegmentHeader;
  /** Page 0 of the file. */
  headerBytes: Buffer;
  /** Everything after the data section: padding, index, trailer. Append it, then write the header. */
  readonly tail: Buffer;
  /** The same as `tail`, in its parts (no copy). */
  readonly tailParts: readonly Buffer[];
  /** File offset where `tail` goes. */
  tailOffset: number;
  bodyCrc: number;
  headerCrc: number;
}

const CHUNK_BYTES = 1 << 20;
/**
 * One seed for every segment by default, so a lookup across a base and its deltas hashes the key
 * once. Keys come from our own producers, not from the open internet: flooding is not a concern.
 */
export const DEFAULT_HASH_SEED = 0x5354524b;

export class SegmentEncoder implements RecordTarget {
  readonly segmentUuid: string;
  readonly hashSeed: number;
  private readonly entries = new IndexEntries();
  /** Per record, in write order: its event time and whether it is a tombstone (room for `entries.capacity`). */
  private eventTimes = new Float64Array(0);
  private tombstones = new Uint8Array(0);
  private readonly batchState = new Float64Array(BATCH_SLOTS);
  /** Zero beyond `used` (records are written into zeroed memory; `flush` zeroes what it hands on). */
  private chunk = Buffer.alloc(CHUNK_BYTES);
  /** Views of the chunk, for writing values without a view per row (the chunk owns its ArrayBuffer). */
  private chunkFloats = new Float32Array(this.chunk.buffer, 0, this.chunk.length >> 2);
  private chunkDoubles = new Float64Array(this.chunk.buffer, 0, this.chunk.length >> 3);
  private chunkWords = new Int32Array(this.chunk.buffer, 0, this.chunk.length >> 2);
  private used = 0;
  private allTombstones = 0;
  private allMinEventTimeMs = Number.MAX_SAFE_INTEGER;
  private allMaxEventTimeMs = Number.MIN_SAFE_INTEGER;
  /** Absolute file offset of the next record. */
  private offset = HEADER_BYTES;
  private bodyCrc = 0;
  private readonly salt: number;
  private readonly hash: KeyHash = { lo: 0, hi: 0 };
  /** zlib.crc32, or the addon's (faster) one. */
  private readonly crc32: (data: Uint8Array, seed: number) => number;

  constructor(
    private readonly sink: SegmentSink,
    private readonly options: SegmentEncoderOptions,
  ) {
    this.segmentUuid = options.segmentUuid ?? randomBytes(16).toString("hex");
    this.hashSeed = options.hashSeed ?? DEFAULT_HASH_SEED;
    this.salt = saltOf(this.segmentUuid);
    this.crc32 = options.native?.crc32 ?? crc32;
  }

  /** Bytes the file would have if it ended after the records so far (for splitting). */
  get estimatedBytes(): number {
    return this.offset + alignUp(this.entries.count / 0.7, 1) * 16 + PAGE_BYTES * 2;
  }

  get recordCount(): number {
    return this.entries.count;
  }

  /** Adds a row or, with values null, a tombstone. Later adds of a key win. */
  add(key: string | Buffer, eventTimeMs: number, values: RowContent | null): void {
    if (!Number.isSafeInteger(eventTimeMs))
      throw new InvalidValueError(`Event time ${eventTimeMs} is not an integer ms`);
    const encoded = values instanceof Uint8Array;
    const valueLen = values === null ? 0 : encoded ? values.length : measureRow(this.options.layout, values);
    // Room for the longest encoding of the key (3 bytes a UTF-16 unit); the exact length is known once written.
    const maxKeyBytes = typeof key === "string" ? key.length * 3 : key.length;
    const at = this.reserve(recordLength(Math.min(maxKeyBytes, MAX_KEY_BYTES + 8), valueLen));
    const b = this.chunk;
    const keyAt = at + RECORD_HEADER_BYTES;
    const keyLen =
      typeof key === "string"
        ? key.length <= MAX_KEY_BYTES + 8
          ? b.write(key, keyAt, "utf8")
          : MAX_KEY_BYTES + 1
        : key.copy(b, keyAt);
    if (keyLen === 0 || keyLen > MAX_KEY_BYTES) {
      b.fill(0, at); // keep the chunk zero beyond `used`
      throw new InvalidValueError(
        `Key must be 1 to ${MAX_KEY_BYTES} UTF-8 bytes (got ${keyLen === 0 ? 0 : "more"})`,
      );
    }
    const length = recordLength(keyLen, valueLen);
    const valueAt = keyAt + ((keyLen + 7) & ~7);
    b.fill(0, keyAt + keyLen, at + length);
    b.writeUInt32LE(0, at);
    b.writeUInt16LE(values === null ? FLAG_TOMBSTONE : 0, at + 4);
    b.writeUInt16LE(keyLen, at + 6);
    b.writeUInt32LE(valueLen, at + 8);
    b.writeUInt32LE(0, at + 12);
    // i64 as two halves: no BigInt per record.
    b.writeUInt32LE(eventTimeMs >>> 0, at + 16);
    b.writeInt32LE(Math.floor(eventTimeMs / 4294967296), at + 20);
    if (encoded) b.set(values, valueAt);
    else if (values !== null) writeRow(this.options.layout, values, b, valueAt, this.chunkFloats);
    this.seal(length, keyLen, eventTimeMs, values === null ? 1 : 0);
  }

  get bytes(): Buffer {
    return this.chunk;
  }

  get floats(): Float32Array {
    return this.chunkFloats;
  }

  get doubles(): Float64Array {
    return this.chunkDoubles;
  }

  get words(): Int32Array {
    return this.chunkWords;
  }

  /** Where the next record, of at most `maxLength` bytes, is to be written (then `commit` or `add` it). */
  reserve(maxLength: number): number {
    // Room for the zero bytes seal may put before the record too.
    const room = maxLength + MAX_RECORD_PAD;
    if (this.offset + room + TRAILER_BYTES > MAX_SEGMENT_BYTES) {
      throw new RangeError("Segment would pass 2 GiB: split it (see estimatedBytes)");
    }
    if (this.used + room > this.chunk.length) this.flush(room);
    return this.used;
  }

  commit(at: number, keyLen: number, valueLen: number, eventTimeMs: number): void {
    if (at !== this.used) throw new RangeError(`Record committed at ${at}, expected ${this.used}`);
    if (keyLen === 0 || keyLen > MAX_KEY_BYTES) {
      this.chunk.fill(0, at);
      throw new InvalidValueError(`Key must be 1 to ${MAX_KEY_BYTES} UTF-8 bytes (got ${keyLen})`);
    }
    if (!Number.isSafeInteger(eventTimeMs)) {
      this.chunk.fill(0, at);
      throw new InvalidValueError(`Event time ${eventTimeMs} is not an integer ms`);
    }
    const w = this.chunkWords;
    const i = at >> 2;
    w[i + 1] = keyLen << 16; // flags 0 | keyLen
    w[i + 2] = valueLen;
    w[i + 4] = eventTimeMs; // low half (ToInt32 keeps the low 32 bits)
    w[i + 5] = Math.floor(eventTimeMs / 4294967296);
    this.seal(recordLength(keyLen, valueLen), keyLen, eventTimeMs, 0);
  }

  /**
   * Finishes the record written at `used` (all but its CRC): moves it past a line pad when
   * recordPad asks for one, then checksums, hashes and indexes it where it ends up.
   */
  private seal(length: number, keyLen: number, eventTimeMs: number, tombstone: number): void {
    const b = this.chunk;
    const pad = recordPad(this.offset, length);
    if (pad !== 0) {
      b.copyWithin(this.used + pad, this.used, this.used + length);
      b.fill(0, this.used, this.used + pad);
      this.used += pad;
      this.offset += pad;
    }
    const at = this.used;
    b.writeUInt32LE(crc32Range(b, at + 4, at + length, recordSeed(this.salt, this.offset)), at);
    const keyAt = at + RECORD_HEADER_BYTES;
    hashKeyRange(b, keyAt, keyAt + keyLen, this.hashSeed, this.hash);
    this.entries.push(this.hash.lo, this.hash.hi, this.offset, length);
    this.noteRecord(eventTimeMs, tombstone);
    this.used += length;
    this.offset += length;
  }

  /** Event time and tombstone of every record (for the header), and their totals. Call after entries.push. */
  private noteRecord(eventTimeMs: number, tombstone: number): void {
    const i = this.entries.count - 1;
    if (i >= this.eventTimes.length) this.growRecords(i + 1);
    this.eventTimes[i] = eventTimeMs;
    this.tombstones[i] = tombstone;
    this.allTombstones += tombstone;
    if (eventTimeMs < this.allMinEventTimeMs) this.allMinEventTimeMs = eventTimeMs;
    if (eventTimeMs > this.allMaxEventTimeMs) this.allMaxEventTimeMs = eventTimeMs;
  }

  openBatch(estimateLimit = Infinity): RecordBatch {
    // Room for every record the chunk can still take, so the native side never runs out first.
    this.growRecords(this.entries.count + Math.floor((this.chunk.length - this.used) / MIN_RECORD_BYTES) + 1);
    const s = this.batchState;
    s[BATCH_USED] = this.used;
    s[BATCH_END] = this.chunk.length;
    s[BATCH_OFFSET] = this.offset;
    s[BATCH_SALT] = this.salt;
    s[BATCH_SEED] = this.hashSeed >>> 0;
    s[BATCH_COUNT] = this.entries.count;
    s[BATCH_MIN_EVENT_TIME] = this.allMinEventTimeMs;
    s[BATCH_MAX_EVENT_TIME] = this.allMaxEventTimeMs;
    s[BATCH_ESTIMATE_LIMIT] = estimateLimit;
    return { bytes: this.chunk, state: s, entries: this.entries.raw, eventTimes: this.eventTimes };
  }

  closeBatch(): void {
    const s = this.batchState;
    const added = s[BATCH_COUNT]! - this.entries.count;
    if (added < 0 || s[BATCH_USED]! - this.used !== s[BATCH_OFFSET]! - this.offset)
      throw new RangeError("A record batch went backwards");
    // Native records are live rows: their tombstone bytes are already 0.
    this.entries.count += added;
    this.used = s[BATCH_USED]!;
    this.offset = s[BATCH_OFFSET]!;
    this.allMinEventTimeMs = s[BATCH_MIN_EVENT_TIME]!;
    this.allMaxEventTimeMs = s[BATCH_MAX_EVENT_TIME]!;
  }

  /** Room for `n` records in the per-record arrays (and the index entries). */
  private growRecords(n: number): void {
    this.entries.ensure(n);
    if (n <= this.eventTimes.length) return;
    const cap = Math.max(n, this.eventTimes.length * 2, 1024);
    const times = new Float64Array(cap);
    times.set(this.eventTimes);
    this.eventTimes = times;
    const tombstones = new Uint8Array(cap);
    tombstones.set(this.tombstones);
    this.tombstones = tombstones;
  }

  /** Ends the data section and builds index, trailer and header. Call once, after the last add. */
  finish(): EncodedSegmentEnd {
    this.flush(0);
    const dataLength = alignUp(this.offset - HEADER_BYTES, PAGE_BYTES);
    const padding = Buffer.alloc(HEADER_BYTES + dataLength - this.offset);
    const index = buildIndex(
      this.entries,
      (a, b) => this.keyAt(a).equals(this.keyAt(b)),
      this.options.native?.placeIndexEntries,
    );
    let tombstoneCount = this.allTombstones;
    let minEventTimeMs = this.allMinEventTimeMs;
    let maxEventTimeMs = this.allMaxEventTimeMs;
    if (index.liveCount !== this.entries.count) {
      // Some records were replaced by later ones of the same key: count the live ones only.
      tombstoneCount = 0;
      minEventTimeMs = Number.MAX_SAFE_INTEGER;
      maxEventTimeMs = Number.MIN_SAFE_INTEGER;
      const live = index.liveEntries;
      for (let i = 0; i < index.liveCount; i++) {
        const e = live[i]!;
        tombstoneCount += this.tombstones[e]!;
        minEventTimeMs = Math.min(minEventTimeMs, this.eventTimes[e]!);
        maxEventTimeMs = Math.max(maxEventTimeMs, this.eventTimes[e]!);
      }
    }
    if (index.liveCount === 0) minEventTimeMs = maxEventTimeMs = 0;
    this.bodyCrc = this.crc32(index.bytes, this.crc32(padding, this.bodyCrc));
    const indexOffset = HEADER_BYTES + dataLength;
    const header: SegmentHeader = {
      formatVersion: FORMAT_VERSION,
      kind: this.options.kind,
      segmentUuid: this.segmentUuid,
      baseUuid: this.options.baseUuid ?? null,
      schemaHash: this.options.schemaHash,
      tableName: this.options.tableName,
      hashSeed: this.hashSeed,
      slotCount: index.slotCount,
      maxProbe: index.maxProbe,
      recordCount: index.liveCount,
      tombstoneCount,
      dataOffset: HEADER_BYTES,
      dataLength,
      indexOffset,
      indexLength: index.bytes.length,
      fileLength: indexOffset + index.bytes.length + TRAILER_BYTES,
      minEventTimeMs,
      maxEventTimeMs,
    };
    const headerBytes = encodeHeader(header);
    const trailer = encodeTrailer(this.segmentUuid, this.bodyCrc);
    return {
      header,
      headerBytes,
      tailParts: [padding, index.bytes, trailer],
      get tail() {
        return Buffer.concat(this.tailParts);
      },
      tailOffset: this.offset,
      bodyCrc: this.bodyCrc,
      headerCrc: headerBytes.readUInt32LE(HEADER_BYTES - 4),
    };
  }

  private keyAt(offset: number): Buffer {
    const keyLen = this.sink.readAt(offset + 6, 2).readUInt16LE(0);
    return this.sink.readAt(offset + RECORD_HEADER_BYTES, keyLen);
  }

  /** Hands the chunk to the sink and makes room for a record of `next` bytes. */
  private flush(next: number): void {
    if (this.used > 0) {
      const bytes = this.chunk.subarray(0, this.used);
      this.bodyCrc = this.crc32(bytes, this.bodyCrc);
      this.sink.append(bytes);
      bytes.fill(0);
      this.used = 0;
    }
    if (next > this.chunk.length) {
      this.chunk = Buffer.alloc((next + 7) & ~7);
      this.chunkFloats = new Float32Array(this.chunk.buffer, 0, this.chunk.length >> 2);
      this.chunkDoubles = new Float64Array(this.chunk.buffer, 0, this.chunk.length >> 3);
      this.chunkWords = new Int32Array(this.chunk.buffer, 0, this.chunk.length >> 2);
    }
  }
}

/** A sink that keeps the whole segment in memory: for tests, fixtures and small deltas. */
export class MemorySegmentSink implements SegmentSink {
  private readonly chunks: Buffer[] = [Buffer.alloc(HEADER_BYTES)];
  private length = HEADER_BYTES;
  private joined: Buffer | null = null;

  append(chunk: Uint8Array): void {
    this.chunks.push(Buffer.from(chunk));
    this.length += chunk.length;
    this.joined = null;
  }

  readAt(offset: number, length: number): Buffer {
    this.joined ??= Buffer.concat(this.chunks, this.length);
    return this.joined.subarray(offset, offset + length);
  }

  /** The finished file. */
  fileBytes(end: EncodedSegmentEnd): Buffer {
    const file = Buffer.concat([...this.chunks, ...end.tailParts]);
    end.headerBytes.copy(file, 0);
    return file;
  }
}

/** Encodes a whole segment in memory. */
export function encodeSegment(
  options: SegmentEncoderOptions,
  rows: Iterable<{ key: string; eventTimeMs: number; values: readonly FeatureValue[] | null }>,
): { bytes: Buffer; end: EncodedSegmentEnd } {
  const sink = new MemorySegmentSink();
  const encoder = new SegmentEncoder(sink, options);
  for (const r of rows) encoder.add(r.key, r.eventTimeMs, r.values);
  const end = encoder.finish();
  return { bytes: sink.fileBytes(end), end };
}
