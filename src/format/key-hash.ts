/**
 * strata-hash64: the key hash of the segment index, over the key's UTF-8 bytes, so segments can
 * be built and read outside Node. Two 32-bit FNV-1a lanes with different offset bases and primes,
 * each finished with murmur3's fmix32 after mixing in the length:
 *
 *   lo = 0x811c9dc5 ^ seed;  hi = 0x050c5d1f ^ seed
 *   for each byte b:  lo = (lo ^ b) * 0x01000193;  hi = (hi ^ b) * 0x0100019d   (mod 2^32)
 *   lo = fmix32(lo ^ len);   hi = fmix32(hi ^ rotl32(len, 16))
 *   fmix32(h) = h ^= h >>> 16; h *= 0x85ebca6b; h ^= h >>> 13; h *= 0xc2b2ae35; h ^= h >>> 16
 *
 * The slot is `lo & (slotCount - 1)`; (lo, hi) is the 64-bit fingerprint kept in the slot.
 * The hash picks a slot, it never decides equality: a lookup always compares the key bytes.
 */

export interface KeyHash {
  lo: number;
  hi: number;
}

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function finish(out: KeyHash, lo: number, hi: number, len: number): KeyHash {
  out.lo = fmix32(lo ^ len);
  out.hi = fmix32(hi ^ ((len << 16) | (len >>> 16)));
  return out;
}

/** Hashes UTF-8 bytes. `out` is reused by hot loops to avoid an allocation per lookup. */
export function hashKeyBytes(bytes: Uint8Array, seed: number, out: KeyHash = { lo: 0, hi: 0 }): KeyHash {
  return hashKeyRange(bytes, 0, bytes.length, seed, out);
}

/** Hashes the UTF-8 bytes at [start, end) of `bytes`. */
export function hashKeyRange(
  bytes: Uint8Array,
  start: number,
  end: number,
  seed: number,
  out: KeyHash,
): KeyHash {
  let lo = 0x811c9dc5 ^ seed;
  let hi = 0x050c5d1f ^ seed;
  for (let i = start; i < end; i++) {
    const b = bytes[i]!;
    lo = Math.imul(lo ^ b, 0x01000193);
    hi = Math.imul(hi ^ b, 0x0100019d);
  }
  return finish(out, lo, hi, end - start);
}

/**
 * Hashes a JS string as its UTF-8 bytes without encoding it when it is ASCII (the common key);
 * returns false when the key is not ASCII, and the caller hashes its encoded bytes instead.
 */
export function hashAsciiKey(key: string, seed: number, out: KeyHash): boolean {
  let lo = 0x811c9dc5 ^ seed;
  let hi = 0x050c5d1f ^ seed;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c > 0x7f) return false;
    lo = Math.imul(lo ^ c, 0x01000193);
    hi = Math.imul(hi ^ c, 0x0100019d);
  }
  finish(out, lo, hi, key.length);
  return true;
}
