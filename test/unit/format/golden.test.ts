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
import { FORMAT_VERSION, READABLE_FORMAT_VERSIONS } from "../../../src/format/segment-layout.js";

const dirOf = (version: number): string => `test/fixtures/segments/v${version}`;
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
/** A record of 320 bytes after one of 88: a line pad of 40 zeros before it (format 2). */
const padded = [
  rows[0]!,
  {
    key: "user:9",
    eventTimeMs: 6,
    values: [9n, 1, "Lin", new Float32Array([1, 2]), false, Buffer.alloc(240, 7), -1] as FeatureValue[],
  },
  rows[3]!,
];
const fixturesOf = (version: number) => ({
  "base.seg": { kind: "base" as const, rows: rows.slice(0, 3) },
  "delta.seg": { kind: "delta" as const, rows },
  ...(version >= 2 ? { "padded.seg": { kind: "delta" as const, rows: padded } } : {}),
});
const options = (kind: "base" | "delta") => ({
  kind,
  tableName: "golden",
  schemaHash: schemaHash(schema),
  layout,
  segmentUuid: kind === "base" ? "0123456789abcdef0123456789abcdef" : "fedcba9876543210fedcba9876543210",
  baseUuid: kind === "delta" ? "0123456789abcdef0123456789abcdef" : null,
  hashSeed: 0x5354524b,
});

describe.each(READABLE_FORMAT_VERSIONS)("golden segments v%i", (version) => {
  for (const [name, f] of Object.entries(fixturesOf(version))) {
    const path = join(dirOf(version), name);
    if (process.env.STRATA_WRITE_GOLDEN === "1" && version === FORMAT_VERSION) {
      mkdirSync(dirOf(version), { recursive: true });
      writeFileSync(path, encodeSegment(options(f.kind), f.rows).bytes);
    }

    it(`${name} decodes to its rows`, () => {
      const view = new SegmentView(readFileSync(path), path);
      view.verifyBody();
      expect(view.header).toMatchObject({
        formatVersion: version,
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

    if (name === "padded.seg") {
      it("padded.seg has zeros before its second record up to the line that saves it a line", () => {
        const view = new SegmentView(readFileSync(path), path);
        const at = view.find(new LookupKey(f.rows[1]!.key, view.header.hashSeed));
        expect([at, view.recordLengthAt(4096), view.recordLengthAt(at)]).toEqual([4224, 88, 320]);
        expect(view.bytes.subarray(4096 + 88, at).equals(Buffer.alloc(40))).toBe(true);
        expect(view.afterLinePad(4096 + 88)).toBe(at);
      });
    }

    if (version === FORMAT_VERSION) {
      it(`${name} is what today's encoder writes`, () => {
        expect(encodeSegment(options(f.kind), f.rows).bytes.equals(readFileSync(path))).toBe(true);
      });
    }
  }
});

describe("strata-hash64", () => {
  it("has fixed values (other implementations test against these)", () => {
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

describe.each(READABLE_FORMAT_VERSIONS)("a reader outside Node, format v%i", (version) => {
  it("scripts/segment_lookup.py finds the same rows in the golden segment", () => {
    const path = join(dirOf(version), "delta.seg");
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
