/**
 * Golden segments, one folder per format version: a v1 file must keep decoding to the same rows
 * after v2 ships, and today's encoder must still produce these bytes exactly. To add a version,
 * write its fixtures with STRATA_WRITE_GOLDEN=1 and commit them; never rewrite an old version's.
 */
import { describe, expect, it } from "vitest";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { encodeSegment } from "../../../src/format/segment-encoder.js";
import { LookupKey, NOT_FOUND, SegmentView } from "../../../src/format/segment-view.js";
import { decodeRow, rowLayout } from "../../../src/format/row-layout.js";
import { schemaHash, type FeatureValue } from "../../../src/format/schema.js";
import { hashKeyBytes } from "../../../src/format/key-hash.js";

const DIR = "test/fixtures/segments/v1";
const schema = {
  features: [
    { name: "age", type: "int64" as const },
    { name: "score", type: "float32" as const },
    { name: "name", type: "string" as const },
    { name: "emb", type: "float32[2]" as const },
    { name: "ok", type: "bool" as const },
    { name: "raw", type: "bytes" as const },
    { name: "ratio", type: "float64" as const },
  ],
};
const layout = rowLayout(schema);
const rows: Array<{ key: string; eventTimeMs: number; values: FeatureValue[] | null }> = [
  {
    key: "user:1",
    eventTimeMs: 1_732_000_000_000,
    values: [31n, 0.5, "Ada", new Float32Array([0.25, -1]), true, Buffer.from([1, 2, 3]), 2.5],
  },
  {
    key: "user:2",
    eventTimeMs: 1_732_000_000_001,
    values: [-(2n ** 63n), null, null, null, false, null, null],
  },
  {
    key: "ключ",
    eventTimeMs: 0,
    values: [2n ** 63n - 1n, -0, "ü€𝄞", new Float32Array([3.4e38, 1e-45]), null, Buffer.alloc(0), Number.NaN],
  },
  { key: "gone", eventTimeMs: 5, values: null },
];
const fixtures = {
  "base.seg": { kind: "base" as const, rows: rows.slice(0, 3) },
  "delta.seg": { kind: "delta" as const, rows },
};
const options = (kind: "base" | "delta") => ({
  kind,
  tableName: "golden",
  schemaHash: schemaHash(schema),
  layout,
  segmentUuid: kind === "base" ? "0123456789abcdef0123456789abcdef" : "fedcba9876543210fedcba9876543210",
  baseUuid: kind === "delta" ? "0123456789abcdef0123456789abcdef" : null,
  hashSeed: 0x5354524b,
});

describe("golden segments v1", () => {
  for (const [name, f] of Object.entries(fixtures)) {
    const path = join(DIR, name);
    if (process.env.STRATA_WRITE_GOLDEN === "1") {
      mkdirSync(DIR, { recursive: true });
      writeFileSync(path, encodeSegment(options(f.kind), f.rows).bytes);
    }

    it(`${name} decodes to its rows`, () => {
      const view = new SegmentView(readFileSync(path), path);
      view.verifyBody();
      expect(view.header).toMatchObject({
        formatVersion: 1,
        kind: f.kind,
        tableName: "golden",
        recordCount: f.rows.length,
      });
      for (const r of f.rows) {
        const off = view.find(new LookupKey(r.key, view.header.hashSeed));
        expect(off).toBeGreaterThanOrEqual(0);
        expect(view.eventTimeMs(off)).toBe(r.eventTimeMs);
        if (r.values === null) expect(view.isTombstone(off)).toBe(true);
        else
          expect(decodeRow(layout, view.bytes, view.valueOffset(off), view.valueLength(off))).toEqual(
            r.values,
          );
      }
      expect(view.find(new LookupKey("user:3", view.header.hashSeed))).toBe(NOT_FOUND);
    });

    it(`${name} is what today's encoder writes`, () => {
      expect(encodeSegment(options(f.kind), f.rows).bytes.equals(readFileSync(path))).toBe(true);
    });
  }

  it("strata-hash64 has fixed values (other implementations test against these)", () => {
    const h = (s: string, seed = 0) => {
      const r = hashKeyBytes(Buffer.from(s, "utf8"), seed);
      return [r.lo.toString(16), r.hi.toString(16)];
    };
    expect({
      empty: h(""),
      a: h("a"),
      user: h("user:42"),
      seeded: h("user:42", 0x5354524b),
      utf8: h("ключ"),
    }).toMatchSnapshot();
  });
});

describe("a reader outside Node", () => {
  it("scripts/segment_lookup.py finds the same rows in the golden segment", () => {
    const path = join(DIR, "delta.seg");
    const out = execFileSync(
      "python3",
      ["scripts/segment_lookup.py", path, "user:1", "ключ", "gone", "nope"],
      { encoding: "utf8" },
    );
    const got = out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { key: string; status: string; row?: string; event_time_ms?: number });
    const view = new SegmentView(readFileSync(path));
    for (const g of got.filter((x) => x.status === "found")) {
      const off = view.find(new LookupKey(g.key, view.header.hashSeed));
      expect(g.row).toBe(
        view.bytes.toString("hex", view.valueOffset(off), view.valueOffset(off) + view.valueLength(off)),
      );
      expect(g.event_time_ms).toBe(view.eventTimeMs(off));
    }
    expect(got.map((g) => g.status)).toEqual(["found", "found", "tombstone", "absent"]);
  });
});
