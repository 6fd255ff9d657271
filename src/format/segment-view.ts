/**
 * The read side of the segment grammar (segment-layout.ts) over bytes already in memory: a
 * mapped file or a Buffer. Opening checks the header and trailer; `verifyBody` checks every byte;
 * each record read checks that record's CRC. Nothing here returns bytes that failed a check, and
 * no input makes it read outside `bytes`: damage becomes SegmentCorruptError or a CORRUPT result.
 */
import { crc32 } from "node:zlib";
import { SegmentCorruptError } from "./errors.js";
import { crc32Range } from "./crc32.js";
import { hashAsciiKey, hashKeyBytes, type KeyHash } from "./key-hash.js";
import {
  FLAG_TOMBSTONE,
  HEADER_BYTES,
  LINE_BYTES,
  MAX_KEY_BYTES,
  RECORD_HEADER_BYTES,
  TRAILER_BYTES,
  decodeHeader,
  decodeTrailer,
  hex32,
  recordPad,
  recordSeed,
  saltOf,
  type SegmentHeader,
} from "./segment-layout.js";

/** `find` results below zero. */
export const NOT_FOUND = -1;
export const CORRUPT = -2;

/**
 * A key to look up, hashed once and reused across the segments of a version. Hot loops keep one
 * and `set` it per key, so a lookup allocates nothing for an ASCII key.
 */
export class LookupKey {
  readonly hash: KeyHash = { lo: 0, hi: 0 };
  text = "";
  /** Encoded only when the key is not ASCII. */
  bytes: Buffer | null = null;
  private seed: number;

  constructor(text: string, seed: number) {
    this.seed = seed;
    this.set(text);
  }

  set(text: string): this {
    this.text = text;
    if (hashAsciiKey(text, this.seed, this.hash)) this.bytes = null;
    else {
      this.bytes = Buffer.from(text, "utf8");
      hashKeyBytes(this.bytes, this.seed, this.hash);
    }
    return this;
  }

  /** Rehashes for a segment built with another seed (rare: seeds default to one constant). */
  hashFor(seed: number): KeyHash {
    if (seed !== this.seed) {
      this.seed = seed;
      if (this.bytes) hashKeyBytes(this.bytes, seed, this.hash);
      else hashAsciiKey(this.text, seed, this.hash);
    }
    return this.hash;
  }
}

// Little-endian reads straight off the bytes: V8 inlines these, unlike Buffer's read methods.
const u16 = (b: Uint8Array, o: number): number => b[o]! | (b[o + 1]! << 8);
const u32 = (b: Uint8Array, o: number): number =>
  (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
const align8 = (n: number): number => (n + 7) & ~7;

export class SegmentView {
  /** The whole file, 4-byte aligned (the index is read through a Uint32Array). */
  readonly bytes: Buffer;
  readonly header: SegmentHeader;
  /** Seeds every record's CRC (segment-layout.ts recordSeed). */
  readonly salt: number;
  /** End of the data section: no record reaches past it. */
  readonly dataEnd: number;
  private readonly slots: Uint32Array;
  private readonly mask: number;
  private readonly trailerBodyCrc: number;

  /** @param bytes the whole file; `source` names it in errors. */
  constructor(
    bytes: Buffer,
    readonly source = "<memory>",
  ) {
    // A mapping is page aligned; a pooled Buffer may not be, so copy that one.
    this.bytes = bytes.byteOffset % 4 === 0 ? bytes : Buffer.from(bytes);
    try {
      this.header = decodeHeader(bytes, bytes.length);
      this.trailerBodyCrc = decodeTrailer(bytes.subarray(bytes.length - TRAILER_BYTES), this.header);
    } catch (err) {
      if (err instanceof SegmentCorruptError)
        throw new SegmentCorruptError(`${err.message}: "${source}"`, source);
      throw err;
    }
    const h = this.header;
    const b = this.bytes;
    this.slots = new Uint32Array(b.buffer, b.byteOffset + h.indexOffset, h.slotCount * 4);
    this.mask = h.slotCount - 1;
    this.salt = saltOf(h.segmentUuid);
    this.dataEnd = h.dataOffset + h.dataLength;
  }

  /** Checks every byte after the header against the trailer's CRC. Throws SegmentCorruptError. */
  verifyBody(): void {
    this.checkBodyCrc(crc32(this.body()));
  }

  /** What the trailer's body CRC covers: every byte between the header and the trailer. */
  body(): Buffer {
    return this.bytes.subarray(HEADER_BYTES, this.header.fileLength - TRAILER_BYTES);
  }

  /** Throws SegmentCorruptError unless `actual`, the CRC of `body()`, is the trailer's. */
  checkBodyCrc(actual: number): void {
    if (actual !== this.trailerBodyCrc) {
      throw new SegmentCorruptError(
        `Segment is corrupt: body CRC mismatch (expected ${hex32(this.trailerBodyCrc)}, found ${hex32(actual)}): "${this.source}"`,
        this.source,
      );
    }
  }

  get bodyCrc(): number {
    return this.trailerBodyCrc;
  }

  /** Touches every page of the index so the first lookups do not fault on the event loop. */
  warmIndex(): number {
    let sum = 0;
    for (let w = 0; w < this.slots.length; w += 1024) sum ^= this.slots[w]!;
    return sum;
  }

  /**
   * Finds `key`: the record offset (>= 0), NOT_FOUND, or CORRUPT when the record the index names
   * for this key fails its CRC or its bounds (the caller reports data loss, never bytes).
   */
  find(key: LookupKey): number {
    const { lo, hi } = key.hashFor(this.header.hashSeed);
    const slots = this.slots;
    let s = lo & this.mask;
    for (let probe = 0; probe < this.header.maxProbe; probe++, s = (s + 1) & this.mask) {
      const w = s * 4;
      const length = slots[w + 3]!;
      if (length === 0) return NOT_FOUND;
      if (slots[w] !== lo || slots[w + 1] !== hi) continue;
      const offset = slots[w + 2]!;
      if (!this.recordIsIntact(offset, length)) return CORRUPT;
      if (this.keyEquals(offset, key)) return offset;
    }
    return NOT_FOUND;
  }

  /** Bounds and CRC of one record: the check made on every read. */
  recordIsIntact(offset: number, length: number): boolean {
    const b = this.bytes;
    if (
      offset < HEADER_BYTES ||
      (offset & 7) !== 0 ||
      length < RECORD_HEADER_BYTES ||
      offset + length > this.dataEnd
    )
      return false;
    if (RECORD_HEADER_BYTES + align8(u16(b, offset + 6)) + align8(u32(b, offset + 8)) !== length)
      return false;
    return crc32Range(b, offset + 4, offset + length, recordSeed(this.salt, offset)) === u32(b, offset);
  }

  isTombstone(offset: number): boolean {
    return (u16(this.bytes, offset + 4) & FLAG_TOMBSTONE) !== 0;
  }

  /** Event time in ms: an i64, exact as a double for any date a feature has. */
  eventTimeMs(offset: number): number {
    const b = this.bytes;
    const lo = u32(b, offset + 16);
    const hi =
      b[offset + 20]! | (b[offset + 21]! << 8) | (b[offset + 22]! << 16) | (b[offset + 23]! << 24) | 0;
    return hi * 4294967296 + lo;
  }

  keyOf(offset: number): string {
    const start = offset + RECORD_HEADER_BYTES;
    return this.bytes.toString("utf8", start, start + u16(this.bytes, offset + 6));
  }

  /** Absolute offset of the record's row bytes. */
  valueOffset(offset: number): number {
    return offset + RECORD_HEADER_BYTES + align8(u16(this.bytes, offset + 6));
  }

  valueLength(offset: number): number {
    return u32(this.bytes, offset + 8);
  }

  /**
   * The length of the record at `offset` by its own header, or -1 when the header cannot be a
   * record's (zero padding after the last record, or damage). Not CRC checked: a scan walking the
   * data section in file order (storage/version-scan.ts) checks the records it keeps.
   */
  recordLengthAt(offset: number): number {
    const b = this.bytes;
    if (offset < HEADER_BYTES || (offset & 7) !== 0 || offset + RECORD_HEADER_BYTES > this.dataEnd) return -1;
    const keyLength = u16(b, offset + 6);
    if (keyLength === 0 || keyLength > MAX_KEY_BYTES) return -1;
    const length = RECORD_HEADER_BYTES + align8(keyLength) + align8(u32(b, offset + 8));
    return offset + length > this.dataEnd ? -1 : length;
  }

  /**
   * Where the record after a line pad at `offset` starts, or -1 when there is none: zero bytes up
   * to the next line and a record header there that reads, of a length for which the writer puts
   * exactly this pad (recordPad). Format 1 has no pads.
   */
  afterLinePad(offset: number): number {
    const next = this.linePadEnd(offset);
    if (next === offset) return -1;
    const length = this.recordLengthAt(next);
    return length >= 0 && recordPad(offset, length) === next - offset ? next : -1;
  }

  /**
   * The next line's offset when `offset` could start a line pad (format 2, zeros from `offset` up
   * to the next line), else `offset`: where a record after the pad would start.
   */
  linePadEnd(offset: number): number {
    const inLine = offset & (LINE_BYTES - 1);
    if (this.header.formatVersion < 2 || inLine === 0 || offset < HEADER_BYTES) return offset;
    const next = offset - inLine + LINE_BYTES;
    const b = this.bytes;
    for (let i = offset; i < next; i++) if (b[i] !== 0) return offset;
    return next;
  }

  /** The lowest offset >= `from` of a record the index names, or -1: where a walk resumes past damage. */
  nextIndexedRecord(from: number): number {
    const slots = this.slots;
    let next = -1;
    for (let w = 0; w < slots.length; w += 4) {
      const offset = slots[w + 2]!;
      if (slots[w + 3] !== 0 && offset >= from && (next < 0 || offset < next)) next = offset;
    }
    return next;
  }

  keyLength(offset: number): number {
    return u16(this.bytes, offset + 6);
  }

  /** Calls `fn` with the offset and length of every indexed record, in slot order. */
  forEachRecord(fn: (offset: number, length: number) => void): void {
    const slots = this.slots;
    for (let w = 0; w < slots.length; w += 4) {
      const length = slots[w + 3]!;
      if (length !== 0) fn(slots[w + 2]!, length);
    }
  }

  private keyEquals(offset: number, key: LookupKey): boolean {
    const b = this.bytes;
    const keyLen = u16(b, offset + 6);
    const start = offset + RECORD_HEADER_BYTES;
    if (key.bytes)
      return keyLen === key.bytes.length && b.compare(key.bytes, 0, keyLen, start, start + keyLen) === 0;
    const text = key.text;
    if (keyLen !== text.length) return false;
    for (let i = 0; i < keyLen; i++) if (b[start + i] !== text.charCodeAt(i)) return false;
    return true;
  }
}
