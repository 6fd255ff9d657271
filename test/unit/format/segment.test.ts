import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { encodeSegment } from "../../../src/format/segment-encoder.js";
import { CORRUPT, LookupKey, NOT_FOUND, SegmentView } from "../../../src/format/segment-view.js";
import { decodeRow, rowLayout } from "../../../src/format/row-layout.js";
import { schemaHash, type FeatureValue, type TableSchema } from "../../../src/format/schema.js";
import { SegmentCorruptError } from "../../../src/format/errors.js";
import { HEADER_BYTES, recordPad } from "../../../src/format/segment-layout.js";

const schema: TableSchema = {
  name: "users",
  key: "user_id",
  topic: "t",
  maxAgeMs: 0,
  features: [
    { name: "age", type: "int64" },
    { name: "score", type: "float32" },
    { name: "name", type: "string" },
    { name: "emb", type: "float32[3]" },
    { name: "active", type: "bool" },
    { name: "blob", type: "bytes" },
    { name: "ratio", type: "float64" },
  ],
};
const layout = rowLayout(schema);
const options = { kind: "base" as const, tableName: "users", schemaHash: schemaHash(schema), layout };

function row(i: number): FeatureValue[] {
  return [
    BigInt(i) * 3n,
    i / 4,
    `name-${i}`,
    new Float32Array([i, i + 0.5, -i]),
    i % 2 === 0,
    Buffer.from([i & 255]),
    i / 3,
  ];
}

function lookup(view: SegmentView, key: string): FeatureValue[] | "absent" | "corrupt" | "tombstone" {
  const off = view.find(new LookupKey(key, view.header.hashSeed));
  if (off === NOT_FOUND) return "absent";
  if (off === CORRUPT) return "corrupt";
  if (view.isTombstone(off)) return "tombstone";
  return decodeRow(layout, view.bytes, view.valueOffset(off), view.valueLength(off));
}

describe("line pads", () => {
  const lines = (at: number, length: number): number => Math.ceil((at + length) / 64) - Math.floor(at / 64);
  it("put a record at the next line exactly when that makes it span fewer lines for at most an eighth of it", () => {
    fc.assert(
      fc.property(fc.nat(1 << 20), fc.integer({ min: 4, max: 4096 }), (at8, length8) => {
        const [at, length] = [HEADER_BYTES + at8 * 8, length8 * 8];
        const pad = recordPad(at, length);
        const fewest = Math.ceil(length / 64);
        const toLine = (64 - (at % 64)) % 64;
        if (pad === 0) expect(lines(at, length) === fewest || toLine * 8 > length).toBe(true);
        else {
          expect(pad).toBe(toLine);
          expect(pad * 8).toBeLessThanOrEqual(length);
          expect(lines(at, length)).toBeGreaterThan(fewest);
          expect(lines(at + pad, length)).toBe(fewest);
        }
      }),
    );
  });
});

describe("segment encoder and view", () => {
  const rows = Array.from({ length: 1000 }, (_, i) => ({
    key: `user:${i}`,
    eventTimeMs: 1_700_000_000_000 + i,
    values: row(i),
  }));
  const { bytes } = encodeSegment(options, rows);
  const view = new SegmentView(bytes, "test.seg");

  it("round-trips every row, with nulls and non-ASCII keys", () => {
    view.verifyBody();
    expect(view.header.recordCount).toBe(1000);
    for (const i of [0, 1, 2, 500, 999]) expect(lookup(view, `user:${i}`)).toEqual(row(i));
    expect(lookup(view, "user:1000")).toBe("absent");
    const nulls = encodeSegment(options, [
      { key: "ключ", eventTimeMs: 5, values: [null, null, null, null, null, null, null] },
      { key: "mixed", eventTimeMs: 6, values: [1n, null, "ü", null, true, null, 2.5] },
    ]);
    const v = new SegmentView(nulls.bytes);
    expect(lookup(v, "ключ")).toEqual([null, null, null, null, null, null, null]);
    expect(lookup(v, "mixed")).toEqual([1n, null, "ü", null, true, null, 2.5]);
  });

  it("keeps the last write of a key and indexes tombstones", () => {
    const { bytes: b } = encodeSegment({ ...options, kind: "delta" }, [
      { key: "a", eventTimeMs: 1, values: row(1) },
      { key: "a", eventTimeMs: 2, values: row(2) },
      { key: "b", eventTimeMs: 3, values: null },
    ]);
    const v = new SegmentView(b);
    expect(v.header.recordCount).toBe(2);
    expect(v.header.tombstoneCount).toBe(1);
    expect(lookup(v, "a")).toEqual(row(2));
    expect(lookup(v, "b")).toBe("tombstone");
  });

  it("reports a flipped record as corrupt, never as bytes", () => {
    const damaged = Buffer.from(bytes);
    const off = view.find(new LookupKey("user:7", view.header.hashSeed));
    damaged[view.valueOffset(off) + 3]! ^= 0x10;
    const v = new SegmentView(damaged);
    expect(lookup(v, "user:7")).toBe("corrupt");
    expect(lookup(v, "user:8")).toEqual(row(8));
    expect(() => v.verifyBody()).toThrow(SegmentCorruptError);
  });

  it("refuses damaged headers, trailers and truncation", () => {
    const flipHeader = Buffer.from(bytes);
    flipHeader[60]! ^= 1;
    expect(() => new SegmentView(flipHeader, "x.seg")).toThrow(/header CRC mismatch.*x\.seg/);
    const flipTrailer = Buffer.from(bytes);
    flipTrailer[flipTrailer.length - 3]! ^= 1;
    expect(() => new SegmentView(flipTrailer)).toThrow(SegmentCorruptError);
    expect(() => new SegmentView(bytes.subarray(0, bytes.length - 1))).toThrow(/truncated/);
    expect(() => new SegmentView(bytes.subarray(0, 100))).toThrow(SegmentCorruptError);
  });

  it("decodes any bytes or throws a format error", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 9000 }), fc.integer({ min: 0, max: 20 }), (noise, flips) => {
        // Random bytes, and a real segment with random flips (past the header, so opening succeeds often).
        for (const candidate of [Buffer.from(noise), flipBytes(bytes, noise, flips)]) {
          let v: SegmentView;
          try {
            v = new SegmentView(candidate);
          } catch (err) {
            expect(err).toBeInstanceOf(SegmentCorruptError);
            continue;
          }
          for (const k of ["user:1", "user:2", "zzz"]) {
            const r = lookup(v, k);
            if (Array.isArray(r)) expect(r).toEqual(row(Number(k.slice(5))));
          }
        }
      }),
      { numRuns: 200 },
    );
  });
});

function flipBytes(src: Buffer, noise: Uint8Array, flips: number): Buffer {
  const out = Buffer.from(src);
  for (let i = 0; i < flips && i < noise.length; i++) {
    const at = HEADER_BYTES + ((noise[i]! * 7919 + i * 104729) % (out.length - HEADER_BYTES));
    out[at]! ^= 1 << (i % 8);
  }
  return out;
}
