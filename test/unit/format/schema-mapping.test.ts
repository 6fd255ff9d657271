import { describe, expect, it } from "vitest";
import { describeSchemaChange, mapSchema, type FeatureSpec } from "../../../src/format/schema.js";

const schema = (...features: [string, string][]) => ({
  features: features.map(([name, type]) => ({ name, type }) as FeatureSpec),
});

describe("mapSchema", () => {
  const written = schema(["age", "int64"], ["city", "string"], ["emb", "float32[2]"]);

  it("is the identity for the same schema", () => {
    const m = mapSchema(written, written);
    expect(m).toEqual({ sources: [0, 1, 2], identical: true, added: [], dropped: [], retyped: [] });
  });

  it("matches features by name: added read as null (-1), dropped not read, any order", () => {
    const m = mapSchema(schema(["score", "float64"], ["emb", "float32[2]"], ["age", "int64"]), written);
    expect(m.sources).toEqual([-1, 2, 0]);
    expect(m.identical).toBe(false);
    expect(m.added).toEqual(["score"]);
    expect(m.dropped).toEqual(["city"]);
    expect(m.retyped).toEqual([]);
    expect(describeSchemaChange(m)).toBe("added score; dropped city");
  });

  it("calls a reordering a change, and a new type (or vector length) a retyping", () => {
    const reordered = mapSchema(schema(["city", "string"], ["age", "int64"], ["emb", "float32[2]"]), written);
    expect(reordered.identical).toBe(false);
    expect(describeSchemaChange(reordered)).toBe("reordered");
    const m = mapSchema(schema(["age", "float64"], ["city", "string"], ["emb", "float32[3]"]), written);
    expect(m.retyped).toEqual(["age: int64 → float64", "emb: float32[2] → float32[3]"]);
  });
});
