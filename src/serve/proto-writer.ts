/**
 * Protocol buffers wire format, written by hand for the hot responses: sizes first, then one
 * exact allocation, then bytes. Every function takes the buffer and position and returns the new
 * position, so the encoder stays allocation-free per field.
 */

export const WIRE_VARINT = 0;
export const WIRE_FIXED64 = 1;
export const WIRE_LEN = 2;
export const WIRE_FIXED32 = 5;

export const tag = (field: number, wire: number): number => (field << 3) | wire;

export function varint32Size(v: number): number {
  v >>>= 0;
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

/** Size of a 64-bit varint given as two u32 halves (two's complement for negative int64). */
export function varint64Size(lo: number, hi: number): number {
  if (hi === 0) return varint32Size(lo);
  // bits above 32: each 7 more bits adds a byte; 35 bits fit in 5 bytes.
  const bits = 32 + (32 - Math.clz32(hi));
  return Math.ceil(bits / 7);
}

export function writeVarint32(buf: Buffer, pos: number, v: number): number {
  v >>>= 0;
  while (v >= 0x80) {
    buf[pos++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[pos++] = v;
  return pos;
}

export function writeVarint64(buf: Buffer, pos: number, lo: number, hi: number): number {
  lo >>>= 0;
  hi >>>= 0;
  if (hi === 0) return writeVarint32(buf, pos, lo);
  // 4 full 7-bit groups from lo, then a group straddling lo (4 bits) and hi (3 bits).
  for (let i = 0; i < 4; i++) {
    buf[pos++] = (lo & 0x7f) | 0x80;
    lo >>>= 7;
  }
  const v = (lo & 0x0f) | ((hi & 0x07) << 4);
  hi >>>= 3;
  if (hi === 0) {
    buf[pos++] = v;
    return pos;
  }
  buf[pos++] = v | 0x80;
  while (hi >= 0x80) {
    buf[pos++] = (hi & 0x7f) | 0x80;
    hi >>>= 7;
  }
  buf[pos++] = hi;
  return pos;
}

/** A length-delimited field of already-encoded bytes: tag, length, bytes. */
export function lenFieldSize(field: number, length: number): number {
  return varint32Size(tag(field, WIRE_LEN)) + varint32Size(length) + length;
}

export function writeStringField(buf: Buffer, pos: number, field: number, value: string): number {
  pos = writeVarint32(buf, pos, tag(field, WIRE_LEN));
  const n = Buffer.byteLength(value, "utf8");
  pos = writeVarint32(buf, pos, n);
  return pos + buf.write(value, pos, n, "utf8");
}

/** Writes bytes[start, end) as a length-delimited field. */
export function writeBytesField(
  buf: Buffer,
  pos: number,
  field: number,
  bytes: Buffer,
  start: number,
  end: number,
): number {
  pos = writeVarint32(buf, pos, tag(field, WIRE_LEN));
  pos = writeVarint32(buf, pos, end - start);
  if (end - start > 32) return pos + bytes.copy(buf, pos, start, end);
  for (let i = start; i < end; i++) buf[pos++] = bytes[i]!; // a key: cheaper than a native copy call
  return pos;
}

/** Encodes fields that do not change per response (table name, feature names) once. */
export function encodeStringFields(field: number, values: readonly string[]): Buffer {
  const size = values.reduce((n, v) => n + lenFieldSize(field, Buffer.byteLength(v, "utf8")), 0);
  const out = Buffer.alloc(size);
  let pos = 0;
  for (const v of values) pos = writeStringField(out, pos, field, v);
  return out;
}

export function uint64FieldSize(field: number, v: number): number {
  return v === 0 ? 0 : varint32Size(tag(field, WIRE_VARINT)) + varint64Size(v >>> 0, Math.floor(v / 2 ** 32));
}

export function writeUint64Field(buf: Buffer, pos: number, field: number, v: number): number {
  if (v === 0) return pos;
  pos = writeVarint32(buf, pos, tag(field, WIRE_VARINT));
  return writeVarint64(buf, pos, v >>> 0, Math.floor(v / 2 ** 32));
}
