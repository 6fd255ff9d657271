/**
 * Small buffers carved out of large slabs, as Node's Buffer pool does below 4 KiB. Every response
 * (tens of KiB) and every request's key bounds would otherwise be a separate ArrayBuffer: a
 * malloc, external memory V8 counts towards its next GC, and a finalizer. A slab is freed when
 * the last buffer carved from it is collected; in-flight requests bound what that keeps alive.
 */
const SLAB_BYTES = 1 << 20;
/** Larger buffers get their own allocation. */
const MAX_CARVED_BYTES = SLAB_BYTES >>> 3;

export class Slab {
  private slab = new ArrayBuffer(0);
  private used = 0;

  /** Reserves `bytes` in the current slab (a new one when it is full); -1 when too large to carve. */
  private carve(bytes: number): number {
    if (bytes > MAX_CARVED_BYTES) return -1;
    if (this.used + bytes > this.slab.byteLength) {
      this.slab = new ArrayBuffer(SLAB_BYTES);
      this.used = 0;
    }
    const offset = this.used;
    this.used = (offset + bytes + 7) & ~7;
    return offset;
  }

  /** `size` uninitialised bytes. */
  buffer(size: number): Buffer {
    const at = this.carve(size);
    return at < 0 ? Buffer.allocUnsafe(size) : Buffer.from(this.slab, at, size);
  }

  uint32s(count: number): Uint32Array {
    const at = this.carve(count * 4);
    return at < 0 ? new Uint32Array(count) : new Uint32Array(this.slab, at, count);
  }
}
