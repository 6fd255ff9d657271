/**
 * A batch of keys as UTF-8 byte ranges in one buffer: what a batch lookup reads. The gRPC
 * request decoder points the ranges straight into the request bytes (no string per key); callers
 * holding strings fill one with `KeyBatchBuilder`, and a scan copies record keys into a
 * `KeyBatchAppender`.
 */
export interface KeyBatch {
  /** Holds every key's bytes. */
  bytes: Buffer;
  /** Key i is bytes[bounds[2i], bounds[2i + 1]). */
  bounds: Uint32Array;
  count: number;
}

export const keyLength = (keys: KeyBatch, i: number): number => keys.bounds[2 * i + 1]! - keys.bounds[2 * i]!;

/** Fills a reusable KeyBatch from strings; its buffers grow and are kept. */
export class KeyBatchBuilder implements KeyBatch {
  bytes = Buffer.allocUnsafe(4096);
  bounds = new Uint32Array(256);
  count = 0;

  set(keys: readonly string[]): this {
    let size = 0;
    for (const key of keys) size += key.length * 3; // the most UTF-8 bytes a UTF-16 string needs
    if (size > this.bytes.length) this.bytes = Buffer.allocUnsafe(Math.max(size, this.bytes.length * 2));
    if (keys.length * 2 > this.bounds.length)
      this.bounds = new Uint32Array(Math.max(keys.length * 2, this.bounds.length * 2));
    let pos = 0;
    const bytes = this.bytes;
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      this.bounds[2 * i] = pos;
      // ASCII keys (the common case) are copied here: cheaper than a native call per key.
      let c = 0;
      for (let j = 0; j < key.length && (c = key.charCodeAt(j)) < 0x80; j++) bytes[pos + j] = c;
      pos += c < 0x80 ? key.length : bytes.write(key, pos);
      this.bounds[2 * i + 1] = pos;
    }
    this.count = keys.length;
    return this;
  }
}

/** Fills a reusable KeyBatch with byte ranges copied out of other buffers (a scan's keys, from the mapped records); its buffers grow and are kept. */
export class KeyBatchAppender implements KeyBatch {
  bytes = Buffer.allocUnsafe(64 * 1024);
  bounds = new Uint32Array(2048);
  count = 0;
  private end = 0;

  clear(): void {
    this.count = 0;
    this.end = 0;
  }

  /** Appends `src[start, end)`; an empty range (start = end) is an empty key. */
  push(src: Uint8Array, start: number, end: number): void {
    const length = end - start;
    if (this.end + length > this.bytes.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.end + length, this.bytes.length * 2));
      this.bytes.copy(grown, 0, 0, this.end);
      this.bytes = grown;
    }
    if (2 * this.count + 2 > this.bounds.length) {
      const grown = new Uint32Array(this.bounds.length * 2);
      grown.set(this.bounds);
      this.bounds = grown;
    }
    const bytes = this.bytes;
    const at = this.end;
    // Keys are short: a loop beats Buffer.copy's call for them.
    if (length <= 64) for (let i = 0; i < length; i++) bytes[at + i] = src[start + i]!;
    else bytes.set(src.subarray(start, end), at);
    this.bounds[2 * this.count] = at;
    this.bounds[2 * this.count + 1] = at + length;
    this.count++;
    this.end = at + length;
  }

  /** Moves key `from` to index `to` (<= from) and makes it the last one. */
  keep(from: number, to: number): void {
    this.bounds[2 * to] = this.bounds[2 * from]!;
    this.bounds[2 * to + 1] = this.bounds[2 * from + 1]!;
  }
}
