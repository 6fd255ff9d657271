/**
 * Builds the open-addressing index section from the records of a segment, in write order.
 * Linear probing over power-of-two slots; a later record with the same key replaces the earlier
 * one (last write wins), decided by comparing the keys, never by the fingerprint alone.
 */
import { PAGE_BYTES, SLOT_BYTES, alignUp, slotCountFor } from "./segment-layout.js";

/** Index entries in write order: 4 u32 per record (fpLo, fpHi, offset, length). */
export class IndexEntries {
  private words = new Uint32Array(4 * 1024);
  count = 0;

  push(fpLo: number, fpHi: number, offset: number, length: number): void {
    if (this.count * 4 === this.words.length) this.ensure(this.count + 1);
    const w = this.count * 4;
    this.words[w] = fpLo;
    this.words[w + 1] = fpHi;
    this.words[w + 2] = offset;
    this.words[w + 3] = length;
    this.count++;
  }

  /** Room for `n` entries in `raw` (a native writer fills entries past `count` itself). */
  ensure(n: number): void {
    if (n * 4 <= this.words.length) return;
    const grown = new Uint32Array(Math.max(n * 4, this.words.length * 2));
    grown.set(this.words);
    this.words = grown;
  }

  /** The entries' words: 4 per entry, valid for the first `count` entries. */
  get raw(): Uint32Array {
    return this.words;
  }
}

export interface BuiltIndex {
  /** The index section, page padded. */
  bytes: Buffer;
  slotCount: number;
  maxProbe: number;
  /** Records the index points at (later duplicates replaced earlier ones). */
  liveCount: number;
  /** Write-order numbers of the live records, for counting tombstones and event times (made when asked). */
  readonly liveEntries: Uint32Array;
}

/**
 * A faster placement loop (native/segment_index.cc `placeIndexEntries`): places entries
 * `[from, count)` as the loop below does, up to the first whose fingerprint matches an occupied
 * slot; returns that entry's number (or `count`). `state` is [maxProbe, liveCount], in and out.
 */
export type PlaceEntries = (
  words: Uint32Array,
  from: number,
  count: number,
  slots: Uint32Array,
  state: Int32Array,
) => number;

/**
 * @param sameKey called only when two records share a 64-bit fingerprint: true if their keys
 *   (at the given record offsets) are equal.
 * @param place places the entries up to such a match (the same slots); this loop places the rest.
 */
export function buildIndex(
  entries: IndexEntries,
  sameKey: (offsetA: number, offsetB: number) => boolean,
  place?: PlaceEntries,
): BuiltIndex {
  const slotCount = slotCountFor(entries.count);
  const bytes = Buffer.alloc(alignUp(slotCount * SLOT_BYTES, PAGE_BYTES));
  const slots = new Uint32Array(bytes.buffer, bytes.byteOffset, slotCount * 4);
  const mask = slotCount - 1;
  let maxProbe = 0;
  let liveCount = 0;
  const words = entries.raw;
  const state = new Int32Array(2);
  for (let i = 0; i < entries.count; i++) {
    if (place !== undefined) {
      state[0] = maxProbe;
      state[1] = liveCount;
      i = place(words, i, entries.count, slots, state);
      maxProbe = state[0]!;
      liveCount = state[1]!;
      if (i >= entries.count) break;
    }
    const lo = words[i * 4]!;
    const hi = words[i * 4 + 1]!;
    const offset = words[i * 4 + 2]!;
    const length = words[i * 4 + 3]!;
    let s = lo & mask;
    let probe = 1;
    for (; ; s = (s + 1) & mask, probe++) {
      const w = s * 4;
      if (slots[w + 3] === 0) {
        slots[w] = lo;
        slots[w + 1] = hi;
        slots[w + 2] = offset;
        slots[w + 3] = length;
        liveCount++;
        break;
      }
      if (slots[w] === lo && slots[w + 1] === hi && sameKey(slots[w + 2]!, offset)) {
        slots[w + 2] = offset;
        slots[w + 3] = length;
        break;
      }
    }
    if (probe > maxProbe) maxProbe = probe;
  }
  let live: Uint32Array | null = null;
  return {
    bytes,
    slotCount,
    maxProbe,
    liveCount,
    get liveEntries() {
      if (live === null) {
        // Records are written at increasing offsets: an entry is found by its record's offset.
        live = new Uint32Array(liveCount);
        let n = 0;
        for (let s = 0; s < slotCount; s++) {
          if (slots[s * 4 + 3] !== 0) live[n++] = entryAt(words, entries.count, slots[s * 4 + 2]!);
        }
      }
      return live;
    },
  };
}

/** The number of the entry whose record is at `offset` (entries are in increasing offset order). */
function entryAt(words: Uint32Array, count: number, offset: number): number {
  let lo = 0;
  let hi = count - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (words[mid * 4 + 2]! < offset) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
