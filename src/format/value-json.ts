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
  // Integers up to 2^24 are exact in a float32 and print as themselves (-0 as 0).
  if (Number.isInteger(x) && Math.abs(x) <= 16777216) return x === 0 ? 0 : x;
  // The fewest significant digits that read back to x, by bisection over 1..9 (9 always do, and
  // a precision that reads back keeps doing so above it): about 3 formattings instead of up to 9.
  let lo = 1;
  let hi = 9;
  let shortest = Number(x.toPrecision(9));
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const candidate = Number(x.toPrecision(mid));
    if (Math.fround(candidate) === x) {
      hi = mid;
      shortest = candidate;
    } else lo = mid + 1;
  }
  return shortest;
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
