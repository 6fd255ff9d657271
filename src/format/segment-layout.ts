/**
 * Segment file grammar, format version 2 (version 1 is read too). All integers little-endian;
 * offsets are absolute file offsets; every segment is smaller than 2 GiB, so u32 offsets fit and
 * lookups pass them as int32.
 *
 *   segment  := header data index trailer
 *   header   := 4096 bytes (one page), fields below, zero filled, CRC-32 of [0, 4092) at 4092
 *     0   magic          8   "STRATSEG"
 *     8   formatVersion  u16 2 (1: records are never padded; this build reads both)
 *     10  kind           u8  0 = base, 1 = delta
 *     11  reserved       u8
 *     12  headerLength   u32 4096
 *     16  segmentUuid    16  random; its first u32 is the CRC salt of every record
 *     32  baseUuid       16  the base this delta was built on (zero for a base)
 *     48  schemaHash     8   first 8 bytes of SHA-256 of "name:type,..." (format/schema.ts)
 *     56  hashSeed       u32 seed of strata-hash64 (format/key-hash.ts)
 *     60  slotCount      u32 power of two, load <= 0.7
 *     64  maxProbe       u32 longest linear probe any key needs (1 = found in its home slot)
 *     68  recordCount    u32 live records (indexed), tombstones included
 *     72  tombstoneCount u32
 *     76  tableNameLen   u8, then tableName (<= 63 bytes UTF-8) at 77
 *     140 dataOffset     u32 4096
 *     144 dataLength     u32 multiple of 4096
 *     148 indexOffset    u32 = dataOffset + dataLength
 *     152 indexLength    u32 = slotCount * 16, rounded up to 4096
 *     156 fileLength     u32 = indexOffset + indexLength + 32
 *     160 minEventTimeMs i64 over live records (0 when empty)
 *     168 maxEventTimeMs i64
 *   data     := (linePad? record)* zero padding to a page
 *   linePad  := zero bytes up to the next 64-byte line, exactly where recordPad puts them: where
 *               they make the record after them span fewer lines and are at most an eighth of
 *               it (a lookup fetches every line of a record, most of its memory traffic)
 *   record   := (8-byte aligned)
 *     0   crc        u32 CRC-32 of record bytes [4, recordLength), initial value
 *                        recordSeed(salt, offset): a record read from the wrong place fails
 *     4   flags      u16 bit 0 = tombstone (valueLen is then 0)
 *     6   keyLen     u16 1..1024
 *     8   valueLen   u32
 *     12  reserved   u32 0
 *     16  eventTime  i64 ms since the Unix epoch
 *     24  key        keyLen bytes UTF-8, zero padding to 8
 *         value      valueLen bytes (the row layout, format/row-layout.ts), zero padding to 8
 *   index    := slot[slotCount] zero padding to a page
 *   slot     := fpLo u32 | fpHi u32 | recordOffset u32 | recordLength u32   (length 0 = empty)
 *   trailer  := magic "STRATEND" (8) | segmentUuid (16) | bodyCrc u32 (CRC-32 of
 *               [4096, fileLength - 32)) | trailerCrc u32 (CRC-32 of the trailer's first 28 bytes)
 *
 * The trailer is written last: a file cut short has no valid trailer at fileLength - 32.
 */
import { crc32 } from "node:zlib";
import { SegmentCorruptError, SegmentUnsupportedError } from "./errors.js";

export const FORMAT_VERSION = 2;
/** Format versions this build opens: version 1 differs only in never padding a record to a line. */
export const READABLE_FORMAT_VERSIONS: readonly number[] = [1, 2];
export const PAGE_BYTES = 4096;
export const HEADER_BYTES = PAGE_BYTES;
export const TRAILER_BYTES = 32;
export const SLOT_BYTES = 16;
export const RECORD_HEADER_BYTES = 24;
export const MAX_KEY_BYTES = 1024;
export const MAX_TABLE_NAME_BYTES = 63;
/** Offsets travel as int32 through the native lookup (storage/native.ts): stay under 2 GiB per file. */
export const MAX_SEGMENT_BYTES = 2 ** 31 - PAGE_BYTES;
export const MAX_LOAD_FACTOR = 0.7;
export const FLAG_TOMBSTONE = 1;
/** A cache line: the unit a lookup's record fetch is paid in. */
export const LINE_BYTES = 64;
/** The most zero bytes recordPad puts before a record (records start 8-byte aligned). */
export const MAX_RECORD_PAD = LINE_BYTES - 8;

const HEADER_MAGIC = Buffer.from("STRATSEG", "latin1");
const TRAILER_MAGIC = Buffer.from("STRATEND", "latin1");
const HEADER_CRC_AT = HEADER_BYTES - 4;

export type SegmentKind = "base" | "delta";

export interface SegmentHeader {
  formatVersion: number;
  kind: SegmentKind;
  /** 32 hex digits. */
  segmentUuid: string;
  /** 32 hex digits, or null for a base. */
  baseUuid: string | null;
  /** 16 hex digits. */
  schemaHash: string;
  tableName: string;
  hashSeed: number;
  slotCount: number;
  maxProbe: number;
  recordCount: number;
  tombstoneCount: number;
  dataOffset: number;
  dataLength: number;
  indexOffset: number;
  indexLength: number;
  fileLength: number;
  minEventTimeMs: number;
  maxEventTimeMs: number;
}

export const alignUp = (n: number, to: number): number => Math.ceil(n / to) * to;

export function recordLength(keyLen: number, valueLen: number): number {
  return RECORD_HEADER_BYTES + alignUp(keyLen, 8) + alignUp(valueLen, 8);
}

/**
 * Zero bytes to put before a record of `length` bytes that would start at file offset `offset`:
 * up to the next line when that makes it span fewer lines and the pad is at most an eighth of
 * the record (so pads never add more than 12.5% to a segment, and about 3% to records of a few
 * lines), else none. Mirrored by RecordPad in native/segment_format.h.
 */
export function recordPad(offset: number, length: number): number {
  const inLine = offset & (LINE_BYTES - 1);
  const pad = LINE_BYTES - inLine;
  if (inLine === 0 || pad * 8 > length) return 0;
  const lines = (n: number): number => Math.ceil(n / LINE_BYTES);
  return lines(inLine + length) > lines(length) ? pad : 0;
}

/** CRC salt of a segment: the first 32 bits of its uuid. */
export function saltOf(segmentUuid: string): number {
  return Number.parseInt(segmentUuid.slice(0, 8), 16) >>> 0;
}

/** Initial CRC value of the record at `offset`: a record copied elsewhere no longer matches. */
export function recordSeed(salt: number, offset: number): number {
  return (salt ^ Math.imul(offset, 0x9e3779b1)) >>> 0;
}

export function slotCountFor(records: number): number {
  let slots = 8;
  while (slots * MAX_LOAD_FACTOR < records) slots *= 2;
  return slots;
}

export function encodeHeader(h: SegmentHeader): Buffer {
  const b = Buffer.alloc(HEADER_BYTES);
  HEADER_MAGIC.copy(b, 0);
  b.writeUInt16LE(h.formatVersion, 8);
  b.writeUInt8(h.kind === "base" ? 0 : 1, 10);
  b.writeUInt32LE(HEADER_BYTES, 12);
  writeHex(b, 16, h.segmentUuid, 16);
  if (h.baseUuid) writeHex(b, 32, h.baseUuid, 16);
  writeHex(b, 48, h.schemaHash, 8);
  b.writeUInt32LE(h.hashSeed >>> 0, 56);
  b.writeUInt32LE(h.slotCount, 60);
  b.writeUInt32LE(h.maxProbe, 64);
  b.writeUInt32LE(h.recordCount, 68);
  b.writeUInt32LE(h.tombstoneCount, 72);
  const name = Buffer.from(h.tableName, "utf8");
  if (name.length > MAX_TABLE_NAME_BYTES) throw new RangeError(`Table name "${h.tableName}" is too long`);
  b.writeUInt8(name.length, 76);
  name.copy(b, 77);
  b.writeUInt32LE(h.dataOffset, 140);
  b.writeUInt32LE(h.dataLength, 144);
  b.writeUInt32LE(h.indexOffset, 148);
  b.writeUInt32LE(h.indexLength, 152);
  b.writeUInt32LE(h.fileLength, 156);
  b.writeBigInt64LE(BigInt(h.minEventTimeMs), 160);
  b.writeBigInt64LE(BigInt(h.maxEventTimeMs), 168);
  b.writeUInt32LE(crc32(b.subarray(0, HEADER_CRC_AT)), HEADER_CRC_AT);
  return b;
}

/**
 * Decodes and checks the header of a segment of `fileBytes` bytes: magic, version, CRC and that
 * every section lies inside the file in grammar order. Throws SegmentCorruptError otherwise.
 */
export function decodeHeader(buf: Uint8Array, fileBytes: number): SegmentHeader {
  const b = Buffer.from(buf.buffer, buf.byteOffset, Math.min(buf.byteLength, HEADER_BYTES));
  if (b.length < HEADER_BYTES) throw corrupt(`file is ${fileBytes} bytes, shorter than its header page`);
  if (!b.subarray(0, 8).equals(HEADER_MAGIC)) throw corrupt("bad magic (not a Strata segment)");
  const expectedCrc = b.readUInt32LE(HEADER_CRC_AT);
  const actualCrc = crc32(b.subarray(0, HEADER_CRC_AT));
  if (expectedCrc !== actualCrc)
    throw corrupt(`header CRC mismatch (expected ${hex32(expectedCrc)}, found ${hex32(actualCrc)})`);
  const formatVersion = b.readUInt16LE(8);
  if (!READABLE_FORMAT_VERSIONS.includes(formatVersion)) {
    throw new SegmentUnsupportedError(
      `Cannot read segment: format version ${formatVersion} (this build reads ${READABLE_FORMAT_VERSIONS.join(" and ")})`,
    );
  }
  const kindByte = b.readUInt8(10);
  if (kindByte > 1) throw corrupt(`unknown kind ${kindByte}`);
  const nameLen = b.readUInt8(76);
  if (nameLen > MAX_TABLE_NAME_BYTES) throw corrupt(`table name length ${nameLen}`);
  const baseUuid = b.toString("hex", 32, 48);
  const h: SegmentHeader = {
    formatVersion,
    kind: kindByte === 0 ? "base" : "delta",
    segmentUuid: b.toString("hex", 16, 32),
    baseUuid: /^0+$/.test(baseUuid) ? null : baseUuid,
    schemaHash: b.toString("hex", 48, 56),
    tableName: b.toString("utf8", 77, 77 + nameLen),
    hashSeed: b.readUInt32LE(56),
    slotCount: b.readUInt32LE(60),
    maxProbe: b.readUInt32LE(64),
    recordCount: b.readUInt32LE(68),
    tombstoneCount: b.readUInt32LE(72),
    dataOffset: b.readUInt32LE(140),
    dataLength: b.readUInt32LE(144),
    indexOffset: b.readUInt32LE(148),
    indexLength: b.readUInt32LE(152),
    fileLength: b.readUInt32LE(156),
    minEventTimeMs: Number(b.readBigInt64LE(160)),
    maxEventTimeMs: Number(b.readBigInt64LE(168)),
  };
  const { slotCount, maxProbe, recordCount, tombstoneCount } = h;
  if (slotCount < 8 || (slotCount & (slotCount - 1)) !== 0)
    throw corrupt(`slot count ${slotCount} is not a power of two >= 8`);
  if (recordCount > slotCount * MAX_LOAD_FACTOR)
    throw corrupt(`${recordCount} records overfill ${slotCount} slots`);
  if (tombstoneCount > recordCount)
    throw corrupt(`${tombstoneCount} tombstones exceed ${recordCount} records`);
  if (maxProbe > slotCount) throw corrupt(`max probe ${maxProbe} exceeds ${slotCount} slots`);
  if (h.dataOffset !== HEADER_BYTES || h.dataLength % PAGE_BYTES !== 0)
    throw corrupt("data section is misplaced");
  if (h.indexOffset !== h.dataOffset + h.dataLength) throw corrupt("index section is misplaced");
  if (h.indexLength !== alignUp(slotCount * SLOT_BYTES, PAGE_BYTES))
    throw corrupt("index length does not match the slot count");
  if (h.fileLength !== h.indexOffset + h.indexLength + TRAILER_BYTES)
    throw corrupt("file length does not match the sections");
  if (h.fileLength !== fileBytes) {
    throw corrupt(`file is ${fileBytes} bytes, header says ${h.fileLength} (truncated or extended)`);
  }
  return h;
}

export function encodeTrailer(segmentUuid: string, bodyCrc: number): Buffer {
  const t = Buffer.alloc(TRAILER_BYTES);
  TRAILER_MAGIC.copy(t, 0);
  writeHex(t, 8, segmentUuid, 16);
  t.writeUInt32LE(bodyCrc >>> 0, 24);
  t.writeUInt32LE(crc32(t.subarray(0, 28)), 28);
  return t;
}

/** Checks the trailer (the last TRAILER_BYTES of the file) and returns the body CRC it records. */
export function decodeTrailer(t: Buffer, header: SegmentHeader): number {
  if (t.length !== TRAILER_BYTES || !t.subarray(0, 8).equals(TRAILER_MAGIC))
    throw corrupt("trailer missing (file incomplete)");
  if (crc32(t.subarray(0, 28)) !== t.readUInt32LE(28)) throw corrupt("trailer CRC mismatch");
  if (t.toString("hex", 8, 24) !== header.segmentUuid) throw corrupt("trailer belongs to another segment");
  return t.readUInt32LE(24);
}

function writeHex(b: Buffer, at: number, hex: string, bytes: number): void {
  if (!new RegExp(`^[0-9a-f]{${bytes * 2}}$`).test(hex))
    throw new RangeError(`Expected ${bytes * 2} hex digits, got "${hex}"`);
  b.write(hex, at, bytes, "hex");
}

export const hex32 = (n: number): string => "0x" + (n >>> 0).toString(16).padStart(8, "0");

function corrupt(detail: string): SegmentCorruptError {
  return new SegmentCorruptError(`Segment is corrupt: ${detail}`);
}
