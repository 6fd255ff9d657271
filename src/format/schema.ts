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

/**
 * How rows written with one schema are read through another (the config's), feature by feature
 * and by name: a feature the rows lack reads as null, a feature the reader lacks is not read, and
 * the order may differ. A feature whose type changed cannot be read (`retyped`): its bytes mean
 * something else. This is the part of Avro's schema resolution (Venice's model) that needs no
 * defaults, since every Strata feature is nullable.
 */
export interface SchemaMapping {
  /** Per reader feature, in the reader's order: its index in the written schema, or -1. */
  readonly sources: readonly number[];
  /** The schemas are the same: rows can be read and copied as they are. */
  readonly identical: boolean;
  /** Reader features the rows lack (read as null). */
  readonly added: readonly string[];
  /** Written features the reader does not read. */
  readonly dropped: readonly string[];
  /** Features of both whose types differ, as `name: written → reader`. */
  readonly retyped: readonly string[];
}

export function mapSchema(
  reader: Pick<TableSchema, "features">,
  written: Pick<TableSchema, "features">,
): SchemaMapping {
  const byName = new Map(written.features.map((f, i) => [f.name, i]));
  const sources = reader.features.map((f) => byName.get(f.name) ?? -1);
  const readerNames = new Set(reader.features.map((f) => f.name));
  const retyped: string[] = [];
  sources.forEach((from, i) => {
    const want = reader.features[i]!;
    if (from >= 0 && written.features[from]!.type !== want.type)
      retyped.push(`${want.name}: ${written.features[from]!.type} → ${want.type}`);
  });
  return {
    sources,
    identical: schemaHash(reader) === schemaHash(written),
    added: reader.features.filter((_, i) => sources[i] === -1).map((f) => f.name),
    dropped: written.features.filter((f) => !readerNames.has(f.name)).map((f) => f.name),
    retyped,
  };
}

/** What changed from `written` to the reader, in words (`added x; dropped y`), or null: nothing. */
export function describeSchemaChange(m: SchemaMapping): string | null {
  if (m.identical) return null;
  const parts: string[] = [];
  if (m.added.length) parts.push(`added ${m.added.join(", ")}`);
  if (m.dropped.length) parts.push(`dropped ${m.dropped.join(", ")}`);
  if (m.retyped.length) parts.push(`retyped ${m.retyped.join(", ")}`);
  return parts.length ? parts.join("; ") : "reordered";
}
