/**
 * Small buffers carved out of large slabs, as Node's Buffer pool does below 4 KiB. Every response
 * (tens of KiB) and every request's key bounds would otherwise be a separate ArrayBuffer: a
 * malloc, and external memory that V8 counts towards its next full GC (at serving rates that was
 * a mark-compact every ~70 ms). A slab is freed when the last buffer carved from it is collected.
 *
 * A caller that knows when it is done with a buffer (a response grpc-js has written) can
 * `release` it; a slab all of whose buffers were released is reused instead of allocating a new
 * one. A buffer that is never released keeps its slab out of reuse, so reuse is safe by
 * construction: it needs every buffer of the slab to be released, each once.
 */
const SLAB_BYTES = 1 << 20;
/** Larger buffers get their own allocation. */
const MAX_CARVED_BYTES = SLAB_BYTES >>> 3;
/** Slabs kept for reuse; more are left to the GC. */
const SPARE_SLABS = 8;

interface SlabState {
  /** Buffers carved and not released. */
  outstanding: number;
}

export class Slab {
  private slab = new ArrayBuffer(0);
  private used = 0;
  private readonly states = new WeakMap<ArrayBuffer, SlabState>();
  private readonly spare: ArrayBuffer[] = [];

  /** Reserves `bytes` in the current slab (another when it is full); -1 when too large to carve. */
  private carve(bytes: number): number {
    if (bytes > MAX_CARVED_BYTES) return -1;
    if (this.used + bytes > this.slab.byteLength) {
      const full = this.states.get(this.slab);
      if (full?.outstanding === 0 && this.spare.length < SPARE_SLABS) this.spare.push(this.slab);
      this.slab = this.spare.pop() ?? new ArrayBuffer(SLAB_BYTES);
      this.states.set(this.slab, { outstanding: 0 });
      this.used = 0;
    }
    const offset = this.used;
    this.used = (offset + bytes + 7) & ~7;
    this.states.get(this.slab)!.outstanding++;
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

  /**
   * The caller is done with `view` (from `buffer` or `uint32s`) and keeps no view of it: its bytes
   * may be reused. Once per view.
   */
  release(view: ArrayBufferView): void {
    const state = this.states.get(view.buffer as ArrayBuffer);
    if (!state) return; // not carved
    state.outstanding--;
    if (state.outstanding === 0 && view.buffer !== this.slab && this.spare.length < SPARE_SLABS) {
      this.spare.push(view.buffer as ArrayBuffer);
    }
  }
}
