/**
 * The response encoder (native row writer) against protobufjs decoding its bytes and the JS row
 * decoder reading the same records: every kind, nulls, long strings, negative and large numbers,
 * feature subsets, PACKED, max age, deleted and damaged rows.
 */
import { join } from "node:path";
import protobuf from "protobufjs";
import { describe, expect, it } from "vitest";
import { encodeSegment } from "../../../src/format/segment-encoder.js";
import { SegmentView } from "../../../src/format/segment-view.js";
import { rowLayout } from "../../../src/format/row-layout.js";
import { schemaHash, type FeatureValue, type TableSchema } from "../../../src/format/schema.js";
import { KeyBatchBuilder } from "../../../src/format/key-batch.js";
import { VersionSnapshot } from "../../../src/storage/version-snapshot.js";
import { VersionScanner } from "../../../src/storage/version-scan.js";
import type { Manifest } from "../../../src/storage/manifest.js";
import { ResponseEncoder, ResponsePlan, type Encoding } from "../../../src/serve/response-encoder.js";
import { PROTO_ROOT } from "../../../src/serve/proto.js";
import { RequestTooLargeError } from "../../../src/serve/errors.js";

const root = protobuf.loadSync(join(PROTO_ROOT, "strata/v1/feature_store.proto"));
const GetFeaturesResponse = root.lookupType("strata.v1.GetFeaturesResponse");
const ScanTableResponse = root.lookupType("strata.v1.ScanTableResponse");

const schema: TableSchema = {
  name: "t",
  key: "id",
  topic: "t",
  maxAgeMs: 0,
  features: [
    { name: "f32", type: "float32" },
    { name: "f64", type: "float64" },
    { name: "i64", type: "int64" },
    { name: "flag", type: "bool" },
    { name: "name", type: "string" },
    { name: "blob", type: "bytes" },
    { name: "vec", type: "float32[5]" },
  ],
};
const layout = rowLayout(schema);
const options = { tableName: "t", schemaHash: schemaHash(schema), layout };

const values = (i: number): FeatureValue[] => [
  i % 5 === 0 ? null : i / 8,
  -i * 1e12 - 0.5,
  i % 2 === 0 ? -(2n ** 62n) + BigInt(i) : BigInt(i) ** 3n,
  i % 3 === 0,
  i % 4 === 0 ? null : "ü".repeat(i % 200),
  Buffer.alloc(i % 300, i & 255),
  i % 6 === 0 ? null : new Float32Array([i, -i, 0.1, 1e30, -0]),
];

const base = encodeSegment(
  { ...options, kind: "base" },
  Array.from({ length: 400 }, (_, i) => ({ key: `k${i}`, eventTimeMs: i * 1000 - 5000, values: values(i) })),
).bytes;
const delta = encodeSegment({ ...options, kind: "delta" }, [
  { key: "k1", eventTimeMs: 2 ** 50, values: values(1001) },
  { key: "k2", eventTimeMs: 0, values: null },
]).bytes;

function snapshot(parts: Buffer[]): VersionSnapshot {
  const manifest = { version: 7, schema: { key: "id", features: schema.features } } as unknown as Manifest;
  return new VersionSnapshot(
    "t",
    manifest,
    "",
    parts.map((b) => new SegmentView(b)),
  );
}

/** What protobufjs makes of a FeatureValue, from a decoded JS row value of a feature of `type`. */
function expected(v: FeatureValue, type: string): Record<string, unknown> {
  if (v === null) return { nullValue: 0 };
  if (type === "float32") return { float32Value: v };
  if (type === "float64") return { float64Value: v };
  if (typeof v === "bigint") return { int64Value: v.toString() };
  if (typeof v === "boolean") return { boolValue: v };
  if (typeof v === "string") return { stringValue: v };
  if (v instanceof Float32Array) return { float32VectorValue: { values: [...v] } };
  if (Buffer.isBuffer(v)) return { bytesValue: [...v] };
  throw new Error(`unexpected value ${String(v)}`);
}

const decoded = (type: protobuf.Type, buf: Buffer) =>
  type.toObject(type.decode(buf), { longs: String, bytes: Array, enums: Number, arrays: true });

describe("response encoder", () => {
  const snap = snapshot([base, delta]);
  const keys = ["k0", "k1", "k2", "missing", "k399", "k10", "k45", "k1"];

  for (const [encoding, features] of [
    ["typed", schema.features.map((f) => f.name)],
    ["typed", ["vec", "i64", "name"]],
    // A feature the version lacks (added to the config after it was written) is null.
    ["typed", ["i64", "added_later", "name"]],
    ["packed", []],
  ] as [Encoding, string[]][]) {
    it(`writes ${encoding} rows ${features.length < 7 ? `of ${features.join(", ")} ` : ""}as protobuf decodes them`, () => {
      const slots = features.length
        ? features.map((n) => layout.slots.find((s) => s.name === n) ?? null)
        : layout.slots;
      const plan = new ResponsePlan(
        "t",
        layout,
        slots.map((slot, i) => ({ name: slot?.name ?? features[i]!, slot })),
        encoding,
      );
      const counters = { found: 0, notFound: 0, outsideMaxAge: 0, dataLoss: 0 };
      const buf = new ResponseEncoder().encodeGetFeatures(
        snap,
        plan,
        0xffffffff,
        0x7fffffff,
        new KeyBatchBuilder().set(keys),
        0,
        0,
        counters,
      );
      const msg = decoded(GetFeaturesResponse, buf);
      expect(msg.requestId).toBe(((0x7fffffffn << 32n) | 0xffffffffn).toString());
      expect(msg.version).toBe("7");
      expect(counters).toEqual({ found: 6, notFound: 2, outsideMaxAge: 0, dataLoss: 0 });
      keys.forEach((key, i) => {
        const row = msg.rows[i];
        const got = snap.get(key);
        expect(row.key).toBe(key);
        if (got.status !== "found") {
          expect(row.status).toBe(2);
          return;
        }
        expect(row.status).toBe(1);
        expect(row.eventTimeMs).toBe(String(got.eventTimeMs));
        const loc = snap.locate(key);
        if (encoding === "packed") {
          const bytes = loc.segment!.bytes.subarray(loc.valueOffset, loc.valueOffset + loc.valueLength);
          expect(row.packed).toEqual([...bytes]);
          return;
        }
        const want = slots.map((s) => (s ? expected(got.values![s.index]!, s.kind.type) : { nullValue: 0 }));
        expect(row.values).toEqual(want);
      });
    });
  }

  it("marks rows outside the max age and damaged rows, and writes scan chunks", () => {
    const damaged = Buffer.from(base);
    const loc = snapshot([damaged]).locate("k20");
    damaged[loc.valueOffset + 3]! ^= 1;
    const snap2 = snapshot([damaged]);
    const plan = new ResponsePlan(
      "t",
      layout,
      layout.slots.map((slot) => ({ name: slot.name, slot })),
      "typed",
    );
    const counters = { found: 0, notFound: 0, outsideMaxAge: 0, dataLoss: 0 };
    const buf = new ResponseEncoder().encodeGetFeatures(
      snap2,
      plan,
      0,
      0,
      new KeyBatchBuilder().set(["k20", "k21", "k399"]),
      300_000,
      400_000,
      counters,
    );
    const msg = decoded(GetFeaturesResponse, buf);
    expect(msg.rows.map((r: { status: number }) => r.status)).toEqual([4, 3, 1]);
    expect(msg.rows[1].values).toEqual([]);
    expect(counters).toEqual({ found: 1, notFound: 0, outsideMaxAge: 1, dataLoss: 1 });

    const scanner = new VersionScanner(snap);
    scanner.nextChunk(100_000);
    const token = Buffer.from("where the scan stands");
    const chunk = new ResponseEncoder().encodeScanChunk(
      snap,
      plan,
      scanner.keys,
      scanner.located,
      0,
      0,
      counters,
      token,
    );
    const message = decoded(ScanTableResponse, chunk);
    const rows = message.rows as { key: string; values: unknown[] }[];
    const reference = [...snap.scan()];
    expect(rows.map((r) => r.key).sort()).toEqual(reference.map((r) => r.key).sort());
    expect(Buffer.from(message.resumeToken as number[])).toEqual(token); // protobufjs camel-cases names
    rows.forEach((r) => expect(r.values).toHaveLength(7));

    // Over the encoder's limit: refused before the response is allocated, naming the way out.
    const small = new ResponseEncoder(chunk.length - 1);
    expect(() =>
      small.encodeScanChunk(snap, plan, scanner.keys, scanner.located, 0, 0, counters, token),
    ).toThrow(/^Response would be \d+ bytes; the limit is \d+: ask for fewer chunk_rows$/);
    expect(() =>
      new ResponseEncoder(40).encodeGetFeatures(
        snap2,
        plan,
        0,
        0,
        new KeyBatchBuilder().set(["k20", "k21", "k399"]),
        0,
        0,
        counters,
      ),
    ).toThrow(RequestTooLargeError);
  });
});
