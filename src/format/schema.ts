/**
 * Table schemas: the feature types of DESIGN §1 and their canonical form. Pure: no fs.
 */
import { createHash } from "node:crypto";

export type ScalarType = "float32" | "float64" | "int64" | "bool" | "string" | "bytes";
export type FeatureType = ScalarType | `float32[${number}]`;

/** A feature type, parsed: the vector length is explicit. */
export type FeatureKind =
  | { readonly type: "float32" | "float64" | "int64" | "bool" | "string" | "bytes" }
  | { readonly type: "float32_vector"; readonly length: number };

export interface FeatureSpec {
  readonly name: string;
  readonly type: FeatureType;
}

export interface TableSchema {
  readonly name: string;
  /** Name of the entity key column or field (a UTF-8 string). */
  readonly key: string;
  /** Kafka topic carrying this table's deltas. */
  readonly topic: string;
  /** Rows older than this are served as OUTSIDE_MAX_AGE; 0 = no limit. */
  readonly maxAgeMs: number;
  readonly features: readonly FeatureSpec[];
}

/**
 * A value of one feature, as JS sees it: float32/float64 → number, int64 → bigint,
 * bool → boolean, string → string, bytes → Uint8Array, float32[N] → Float32Array; null = absent.
 */
export type FeatureValue = number | bigint | boolean | string | Uint8Array | Float32Array | null;

export const TABLE_NAME_PATTERN = /^[a-z][a-z0-9_]{0,62}$/;
export const FEATURE_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
export const MAX_VECTOR_LENGTH = 65_536;
const VECTOR_TYPE = /^float32\[(\d{1,6})\]$/;

/** Parses a feature type string, or returns null when it is not one. */
export function parseFeatureKind(type: string): FeatureKind | null {
  switch (type) {
    case "float32":
    case "float64":
    case "int64":
    case "bool":
    case "string":
    case "bytes":
      return { type };
  }
  const m = VECTOR_TYPE.exec(type);
  if (!m) return null;
  const length = Number(m[1]);
  if (length < 1 || length > MAX_VECTOR_LENGTH) return null;
  return { type: "float32_vector", length };
}

/** Kinds of a schema's features, in order; the schema must have been validated. */
export function featureKinds(schema: Pick<TableSchema, "features">): FeatureKind[] {
  return schema.features.map((f) => {
    const kind = parseFeatureKind(f.type);
    if (!kind) throw new TypeError(`Unvalidated schema: feature "${f.name}" has type "${f.type}"`);
    return kind;
  });
}

/**
 * The schema's identity for segments: the feature names and types, in order (not the topic or
 * max age, which may change without rewriting data). First 8 bytes of SHA-256, hex.
 */
export function schemaHash(schema: Pick<TableSchema, "features">): string {
  const canonical = schema.features.map((f) => `${f.name}:${f.type}`).join(",");
  return createHash("sha256").update(canonical).digest("hex").slice(0, 16);
}
