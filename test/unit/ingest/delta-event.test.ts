import { describe, expect, it } from "vitest";
import { DeltaDecoder, type DeltaInput, type UpsertDelta } from "../../../src/ingest/delta-event.js";
import { featureDeltaType } from "../../../src/ingest/delta-protobuf.js";
import { InvalidDeltaError, type DeltaProblem } from "../../../src/ingest/errors.js";
import { deltaSchema } from "../../helpers/schemas.js";

const schema = deltaSchema;
const decoder = new DeltaDecoder(schema, { maxMessageBytes: 4096, maxValueBytes: 64 });

const json = (value: unknown, key: string | null = null, headers?: DeltaInput["headers"]): DeltaInput => ({
  key: key === null ? null : Buffer.from(key),
  value: Buffer.from(typeof value === "string" ? value : JSON.stringify(value)),
  headers,
  timestampMs: 1_700_000_000_000,
});

function refusal(input: DeltaInput): { problem: DeltaProblem; message: string } {
  try {
    decoder.decode(input);
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidDeltaError);
    const e = err as InvalidDeltaError;
    expect(e.code).toBe("STRATA_DELTA_INVALID");
    expect(e.name).toBe("InvalidDeltaError");
    return { problem: e.problem, message: e.message };
  }
  throw new Error("expected a refusal");
}

describe("DeltaDecoder#decode() with JSON", () => {
  it("types a full upsert in schema order", () => {
    const event = decoder.decode(
      json(
        {
          op: "upsert",
          key: "u1",
          features: {
            age: 31,
            score: 0.5,
            ctr: 0.1,
            active: true,
            city: "Oslo",
            blob: "AAEC",
            emb: [1, 2.5, "NaN"],
          },
          event_time_ms: 1732000000000,
        },
        "u1",
      ),
    ) as UpsertDelta;
    expect(event.op).toBe("upsert");
    expect(event.key).toBe("u1");
    expect(event.complete).toBe(true);
    expect(event.eventTimeMs).toBe(1732000000000);
    expect(event.features[0]).toBe(31n);
    expect(event.features[1]).toBe(0.5);
    expect(event.features[2]).toBe(Math.fround(0.1));
    expect(event.features[3]).toBe(true);
    expect(event.features[4]).toBe("Oslo");
    expect(Array.from(event.features[5] as Uint8Array)).toEqual([0, 1, 2]);
    expect(Array.from(event.features[6] as Float32Array)).toEqual([1, 2.5, NaN]);
  });

  it("keeps a partial upsert partial, with explicit nulls, and takes the key from the message", () => {
    const event = decoder.decode(
      json({ op: "upsert", features: { age: "-9223372036854775808", city: null } }, "u2"),
    ) as UpsertDelta;
    expect(event.key).toBe("u2");
    expect(event.complete).toBe(false);
    expect(event.features).toEqual([
      -9223372036854775808n,
      undefined,
      undefined,
      undefined,
      null,
      undefined,
      undefined,
    ]);
    expect(event.eventTimeMs).toBe(1_700_000_000_000); // the message timestamp
  });

  it("reads a delete, and a Kafka tombstone (a key, no value) as a delete", () => {
    expect(decoder.decode(json({ op: "delete", key: "u3", event_time_ms: 5 }))).toEqual({
      op: "delete",
      key: "u3",
      eventTimeMs: 5,
    });
    expect(decoder.decode({ key: Buffer.from("u4"), value: null, timestampMs: 7 })).toEqual({
      op: "delete",
      key: "u4",
      eventTimeMs: 7,
    });
  });

  it.each<[string, DeltaInput, DeltaProblem, RegExp]>([
    ["bad JSON", json("{not json", "k"), "bad_json", /^Value is not valid JSON: /],
    ["a JSON array", json([1, 2], "k"), "bad_json", /must be a JSON object, got an array of 2/],
    [
      "a missing op",
      json({ key: "k", features: {} }),
      "bad_op",
      /"op" must be "upsert" or "delete", got nothing/,
    ],
    ["an unknown op", json({ op: "update", key: "k", features: {} }), "bad_op", /got "update"/],
    ["no key anywhere", json({ op: "upsert", features: {} }), "missing_key", /has no key/],
    [
      "neither key nor value",
      { key: null, value: null, timestampMs: 0 },
      "missing_key",
      /neither a value nor a key/,
    ],
    [
      "keys that differ",
      json({ op: "delete", key: "a" }, "b"),
      "key_mismatch",
      /"key" "a" differs from the Kafka message key "b"/,
    ],
    ["an empty key", json({ op: "delete", key: "" }), "bad_key", /1 to 1024 UTF-8 bytes, got 0/],
    ["a key over 1024 bytes", json({ op: "delete", key: "x".repeat(1025) }), "bad_key", /got 1025/],
    [
      "a message key that is not UTF-8",
      { key: Buffer.from([0xff, 0xfe]), value: null, timestampMs: 0 },
      "bad_key",
      /not valid UTF-8/,
    ],
    [
      "an unknown field",
      json({ op: "upsert", key: "k", feature: {} }),
      "unknown_field",
      /Unknown field "feature"/,
    ],
    [
      "an unknown feature",
      json({ op: "upsert", key: "k", features: { agee: 1 } }),
      "unknown_feature",
      /Unknown feature "agee": table "users" has "age", "score"/,
    ],
    [
      "a float for an int64",
      json({ op: "upsert", key: "k", features: { age: 3.5 } }),
      "wrong_type",
      /Feature "age" \(int64\): expected an integer, got 3.5/,
    ],
    [
      "an unsafe int64 number",
      json({ op: "upsert", key: "k", features: { age: 2 ** 60 } }),
      "wrong_type",
      /send it as a decimal string/,
    ],
    [
      "an int64 string out of range",
      json({ op: "upsert", key: "k", features: { age: "9223372036854775808" } }),
      "wrong_type",
      /out of the int64 range/,
    ],
    [
      "a string for a bool",
      json({ op: "upsert", key: "k", features: { active: "yes" } }),
      "wrong_type",
      /Feature "active" \(bool\): expected true or false, got "yes"/,
    ],
    [
      "a number for a string",
      json({ op: "upsert", key: "k", features: { city: 5 } }),
      "wrong_type",
      /expected a string, got 5/,
    ],
    ["bad base64", json({ op: "upsert", key: "k", features: { blob: "AAE" } }), "wrong_type", /base64/],
    [
      "a float32 out of range",
      json({ op: "upsert", key: "k", features: { ctr: 1e39 } }),
      "wrong_type",
      /out of the float32 range/,
    ],
    [
      "a short vector",
      json({ op: "upsert", key: "k", features: { emb: [1, 2] } }),
      "wrong_type",
      /Feature "emb" \(float32\[3\]\): expected an array of 3 numbers, got 2/,
    ],
    [
      "a vector element that is not a number",
      json({ op: "upsert", key: "k", features: { emb: [1, "x", 3] } }),
      "wrong_type",
      /element 1 is "x"/,
    ],
    [
      "an oversize string",
      json({ op: "upsert", key: "k", features: { city: "é".repeat(40) } }),
      "oversize",
      /a string of 80 bytes is over the limit of 64/,
    ],
    [
      "an oversize message",
      json({ op: "upsert", key: "k", features: { city: "x".repeat(5000) } }),
      "oversize",
      /over the limit of 4096 \(STRATA_INGEST_MAX_MESSAGE_BYTES\)/,
    ],
    [
      "a negative event time",
      json({ op: "delete", key: "k", event_time_ms: -1 }),
      "bad_event_time",
      /non-negative integer/,
    ],
    [
      "a delete with features",
      json({ op: "delete", key: "k", features: {} }),
      "bad_op",
      /A delete carries no "features"/,
    ],
    [
      "an upsert without features",
      json({ op: "upsert", key: "k" }),
      "wrong_type",
      /An upsert needs "features"/,
    ],
    [
      "another table",
      json({ op: "delete", key: "k", table: "orders" }),
      "wrong_table",
      /names table "orders", but this topic feeds table "users"/,
    ],
    [
      "an unknown content-type",
      json({ op: "delete", key: "k" }, null, { "content-type": "text/csv" }),
      "unsupported_content_type",
      /"text\/csv"/,
    ],
  ])("refuses %s", (_what, input, problem, message) => {
    const r = refusal(input);
    expect(r.problem).toBe(problem);
    expect(r.message).toMatch(message);
  });

  it("accepts content-type application/json with parameters, in any header case", () => {
    const event = decoder.decode(
      json({ op: "delete", key: "k" }, null, { "Content-Type": "application/json; charset=utf-8" }),
    );
    expect(event.op).toBe("delete");
  });
});

describe("DeltaDecoder#decode() with protobuf", () => {
  const FeatureDelta = featureDeltaType();
  const proto = (message: Record<string, unknown>, key: string | null = null): DeltaInput => ({
    key: key === null ? null : Buffer.from(key),
    value: Buffer.from(FeatureDelta.encode(FeatureDelta.fromObject(message)).finish()),
    headers: { "content-type": Buffer.from("application/x-protobuf") },
    timestampMs: 42,
  });

  it("types every kind of value", () => {
    const event = decoder.decode(
      proto(
        {
          op: 1,
          key: "p1",
          features: {
            age: { int64_value: "-9223372036854775807" },
            score: { float32_value: 0.25 },
            ctr: { float64_value: 0.1 },
            active: { bool_value: true },
            city: { null_value: 0 },
            blob: { bytes_value: Buffer.from([9, 8]) },
            emb: { float32_vector_value: { values: [1, 2, 3] } },
          },
          event_time_ms: 99,
        },
        "p1",
      ),
    ) as UpsertDelta;
    expect(event.complete).toBe(true);
    expect(event.eventTimeMs).toBe(99);
    expect(event.features[0]).toBe(-9223372036854775807n);
    expect(event.features[1]).toBe(0.25);
    expect(event.features[2]).toBe(Math.fround(0.1));
    expect(event.features[3]).toBe(true);
    expect(event.features[4]).toBe(null);
    expect(Array.from(event.features[5] as Uint8Array)).toEqual([9, 8]);
    expect(Array.from(event.features[6] as Float32Array)).toEqual([1, 2, 3]);
  });

  it("reads a delete with the key from the message and the timestamp as event time", () => {
    expect(decoder.decode(proto({ op: 2 }, "p2"))).toEqual({ op: "delete", key: "p2", eventTimeMs: 42 });
  });

  it.each<[string, DeltaInput, DeltaProblem, RegExp]>([
    [
      "bytes that are not a FeatureDelta",
      { ...proto({ op: 1 }), value: Buffer.from([0xff, 0xff, 0xff]) },
      "bad_protobuf",
      /not a strata\.v1\.FeatureDelta/,
    ],
    ["OP_UNSPECIFIED", proto({ key: "k" }), "bad_op", /OP_UPSERT or OP_DELETE, got 0/],
    [
      "a value of the wrong type",
      proto({ op: 1, key: "k", features: { age: { string_value: "1" } } }),
      "wrong_type",
      /Feature "age" \(int64\): expected int64_value, got string_value/,
    ],
    [
      "an empty FeatureValue",
      proto({ op: 1, key: "k", features: { age: {} } }),
      "wrong_type",
      /holds no value/,
    ],
    [
      "a vector of the wrong length",
      proto({ op: 1, key: "k", features: { emb: { float32_vector_value: { values: [1] } } } }),
      "wrong_type",
      /expected 3 values, got 1/,
    ],
    [
      "an unknown feature",
      proto({ op: 1, key: "k", features: { nope: { bool_value: true } } }),
      "unknown_feature",
      /"nope"/,
    ],
    [
      "a delete with features",
      proto({ op: 2, key: "k", features: { age: { int64_value: 1 } } }),
      "bad_op",
      /no "features"/,
    ],
  ])("refuses %s", (_what, input, problem, message) => {
    const r = refusal(input);
    expect(r.problem).toBe(problem);
    expect(r.message).toMatch(message);
  });
});
