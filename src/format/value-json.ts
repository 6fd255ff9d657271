/**
 * Feature values as JSON, the way the CLI prints them and JSONL deltas carry them: float32 values
 * in their shortest decimal form that reads back to the same float32 ("0.1", not
 * "0.10000000149011612"), int64 as a number when it is exact in a double and a string otherwise,
 * bytes as base64, vectors as arrays.
 */
import type { FeatureKind, FeatureValue } from "./schema.js";

export type JsonValue = number | string | boolean | null | JsonValue[];

export function float32ToJson(x: number): number | string {
  if (!Number.isFinite(x)) return String(x);
  for (let p = 1; p <= 9; p++) {
    const s = Number(x.toPrecision(p));
    if (Math.fround(s) === x) return s;
  }
  return x;
}

export function featureValueToJson(kind: FeatureKind, v: FeatureValue): JsonValue {
  if (v === null) return null;
  switch (kind.type) {
    case "float32":
      return float32ToJson(v as number);
    case "float64":
      return Number.isFinite(v as number) ? (v as number) : String(v);
    case "int64": {
      const b = v as bigint;
      return b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER)
        ? Number(b)
        : b.toString();
    }
    case "bool":
    case "string":
      return v as boolean | string;
    case "bytes":
      return Buffer.from(v as Uint8Array).toString("base64");
    case "float32_vector":
      return Array.from(v as Float32Array, float32ToJson);
  }
}
