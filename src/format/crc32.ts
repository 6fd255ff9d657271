/**
 * CRC-32 (IEEE 802.3, the polynomial of zlib and Node's zlib.crc32) over a byte range, in JS
 * with slicing-by-8 tables. Same values as zlib.crc32(bytes.subarray(start, end), seed), but takes
 * offsets instead of a subarray: the per-record check on the read path allocates nothing.
 * Whole files go through zlib.crc32, which is faster on long inputs.
 */
const TABLE = new Int32Array(256 * 8);
for (let i = 0; i < 256; i++) {
  let c = i;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  TABLE[i] = c;
}
for (let i = 0; i < 256; i++) {
  for (let t = 1; t < 8; t++)
    TABLE[t * 256 + i] = (TABLE[(t - 1) * 256 + i]! >>> 8) ^ TABLE[TABLE[(t - 1) * 256 + i]! & 0xff]!;
}

export function crc32Range(b: Uint8Array, start: number, end: number, seed = 0): number {
  const T = TABLE;
  let c = ~seed;
  let i = start;
  for (; i + 8 <= end; i += 8) {
    const a = c ^ (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24));
    c =
      T[1792 + (a & 0xff)]! ^
      T[1536 + ((a >>> 8) & 0xff)]! ^
      T[1280 + ((a >>> 16) & 0xff)]! ^
      T[1024 + (a >>> 24)]! ^
      T[768 + b[i + 4]!]! ^
      T[512 + b[i + 5]!]! ^
      T[256 + b[i + 6]!]! ^
      T[b[i + 7]!]!;
  }
  for (; i < end; i++) c = T[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}
