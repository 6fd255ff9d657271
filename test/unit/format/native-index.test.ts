/**
 * buildIndex with the native placement loop (native/segment_index.cc) against the JS loop alone:
 * the same slots, probe length, live records, on entries whose fingerprints repeat often (the
 * same key written again, or two keys sharing a fingerprint, which only comparing keys tells).
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { IndexEntries, buildIndex } from "../../../src/format/segment-index.js";
import { placeIndexEntries } from "../../../src/storage/native.js";

describe("buildIndex with placeIndexEntries", () => {
  it("builds the same index as the JS loop (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 3 })), {
          maxLength: 300,
        }),
        fc.integer({ min: 0, max: 2 ** 32 - 1 }),
        (records, salt) => {
          // Record i: fingerprint from `fp` (few distinct ones, so slots collide and fingerprints
          // repeat), key `fp * 4 + k`: a repeated fingerprint is the same key or not.
          const entries = new IndexEntries();
          const keyOf = new Map<number, number>();
          records.forEach(([fp, k], i) => {
            const offset = 4096 + i * 64;
            const lo = (Math.imul(fp, 0x9e3779b1) ^ salt) >>> 0;
            entries.push(lo, fp, offset, 40 + (i % 3) * 8);
            keyOf.set(offset, fp * 4 + k);
          });
          const sameKey = (a: number, b: number) => keyOf.get(a) === keyOf.get(b);
          const js = buildIndex(entries, sameKey);
          const native = buildIndex(entries, sameKey, placeIndexEntries);
          expect(native.bytes.equals(js.bytes)).toBe(true);
          expect([native.slotCount, native.maxProbe, native.liveCount]).toEqual([
            js.slotCount,
            js.maxProbe,
            js.liveCount,
          ]);
          expect(Array.from(native.liveEntries)).toEqual(Array.from(js.liveEntries));
          // The live entries are the last record of each key.
          const last = new Map<number, number>();
          records.forEach(([fp, k], i) => last.set(fp * 4 + k, i));
          expect(Array.from(js.liveEntries).sort((a, b) => a - b)).toEqual(
            [...last.values()].sort((a, b) => a - b),
          );
        },
      ),
      { numRuns: 500 },
    );
  });

  it("refuses slots it could not place into, instead of reading past them or hanging", () => {
    const words = new Uint32Array([1, 2, 4096, 40]);
    const state = new Int32Array(2);
    expect(() => placeIndexEntries(words, 0, 2, new Uint32Array(32), state)).toThrow(TypeError);
    expect(() => placeIndexEntries(words, 0, 1, new Uint32Array(12), state)).toThrow(TypeError);
    expect(() => placeIndexEntries(words, 0, 1, new Uint32Array(32), new Int32Array(1))).toThrow(TypeError);
    const full = new Uint32Array(32).fill(7);
    expect(() => placeIndexEntries(words, 0, 1, full, state)).toThrow(/full/);
    expect(placeIndexEntries(words, 0, 1, new Uint32Array(32), state)).toBe(1);
    expect(Array.from(state)).toEqual([1, 1]);
  });
});
