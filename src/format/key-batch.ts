/**
 * A batch of keys as UTF-8 byte ranges in one buffer: what a batch lookup reads. The gRPC
 * request decoder points the ranges straight into the request bytes (no string per key); callers
 * holding strings fill one with `KeyBatchBuilder`.
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
