/** The addon's crc32 (carry-less multiply fold, native/checksum.cc) against zlib.crc32. */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { crc32 as zlibCrc32 } from "node:zlib";
import { crc32 } from "../../../src/storage/native.js";

describe("native crc32", () => {
  it("equals zlib.crc32 at every length, alignment and seed (property)", () => {
    fc.assert(
      fc.property(
        // Not empty: zlib.crc32 of an empty view whose memory is a null pointer (a subarray of
        // Buffer.alloc(0)) is 0, not the seed; the addon, like crc32Range, gives the seed.
        fc.uint8Array({ minLength: 1, maxLength: 1200 }),
        fc.integer({ min: 0, max: 15 }),
        fc.integer({ min: 0, max: 2 ** 32 - 1 }),
        (bytes, shift, seed) => {
          const buf = Buffer.alloc(bytes.length + shift);
          buf.set(bytes, shift);
          const view = buf.subarray(shift);
          expect(crc32(view, seed)).toBe(zlibCrc32(view, seed));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("continues a running CRC across pieces, as zlib does", () => {
    const data = Buffer.alloc(1 << 20);
    for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;
    let c = 0;
    for (let at = 0; at < data.length; at += 70_001) c = crc32(data.subarray(at, at + 70_001), c);
    expect(c).toBe(zlibCrc32(data));
  });
});
