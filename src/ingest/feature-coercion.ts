/**
 * Feature values of delta events, checked against the table schema: JSON values (what kcat and
 * any producer send) and the protobuf `FeatureValue` oneof, both to the FeatureValue types of
 * format/schema.ts. Every refusal is an {@link InvalidDeltaError} naming the feature, its type
 * and what was wrong.
 *
 * JSON, per type (null is null for every type):
 * - float32, float64: a number, or the strings "NaN", "Infinity", "-Infinity". A finite number
 *   beyond the float32 range is refused, not turned into an infinity.
 * - int64: an integer number within ±(2^53 − 1) (beyond that JSON.parse has already lost digits),
 *   or a decimal string such as "-9223372036854775808".
 * - bool: true or false. string: a string. bytes: standard base64 with padding.
 * - float32[N]: an array of exactly N numbers (the strings above allowed).
 */
import { featureKinds, type FeatureKind, type FeatureValue, type TableSchema } from "../format/schema.js";
import { InvalidDeltaError } from "./errors.js";

export interface DeltaLimits {
  /** Largest message value, in bytes. */
  readonly maxMessageBytes: number;
  /** Largest string (UTF-8) or bytes feature value, in bytes. */
  readonly maxValueBytes: number;
}

/** A table schema prepared for decoding deltas: feature positions by name, kinds in order. */
export class DeltaSchema {
  readonly table: string;
  readonly names: readonly string[];
  readonly types: readonly string[];
  readonly kinds: readonly FeatureKind[];
  private readonly indexByName: ReadonlyMap<string, number>;

  constructor(
    schema: TableSchema,
    readonly limits: DeltaLimits,
  ) {
    this.table = schema.name;
    this.names = schema.features.map((f) => f.name);
    this.types = schema.features.map((f) => f.type);
    this.kinds = featureKinds(schema);
    this.indexByName = new Map(this.names.map((n, i) => [n, i]));
  }

  get featureCount(): number {
    return this.names.length;
  }

  /** The position of feature `name`; refuses a name the table does not have. */
  indexOf(name: string): number {
    const i = this.indexByName.get(name);
    if (i === undefined) {
      throw new InvalidDeltaError(
        "unknown_feature",
        `Unknown feature ${JSON.stringify(name)}: table "${this.table}" has ${listNames(this.names)}`,
        name,
      );
    }
    return i;
  }

  /** Refuses a value: "Feature "age" (int64): <problem>". */
  wrongType(index: number, problem: string): InvalidDeltaError {
    const name = this.names[index]!;
    return new InvalidDeltaError(
      "wrong_type",
      `Feature ${JSON.stringify(name)} (${this.types[index]}): ${problem}`,
      name,
    );
  }

  checkSize(index: number, bytes: number, what: string): void {
    if (bytes > this.limits.maxValueBytes) {
      const name = this.names[index]!;
      throw new InvalidDeltaError(
        "oversize",
        `Feature ${JSON.stringify(name)} (${this.types[index]}): ${what} of ${bytes} bytes is over the limit of ` +
          `${this.limits.maxValueBytes} (STRATA_INGEST_MAX_VALUE_BYTES)`,
        name,
      );
    }
  }

  /** A JSON value (already parsed) as the feature's value. */
  fromJson(index: number, raw: unknown): FeatureValue {
    if (raw === null) return null;
    const kind = this.kinds[index]!;
    switch (kind.type) {
      case "float32":
      case "float64": {
        const n = jsonFloat(raw);
        if (n === undefined)
          throw this.wrongType(
            index,
            `expected a number (or "NaN", "Infinity", "-Infinity"), got ${describe(raw)}`,
          );
        return kind.type === "float32" ? this.toFloat32(index, n) : n;
      }
      case "int64":
        return this.jsonInt64(index, raw);
      case "bool":
        if (typeof raw !== "boolean")
          throw this.wrongType(index, `expected true or false, got ${describe(raw)}`);
        return raw;
      case "string":
        if (typeof raw !== "string") throw this.wrongType(index, `expected a string, got ${describe(raw)}`);
        // Cheap bound first: a UTF-8 string is at most 3 bytes per UTF-16 unit.
        if (raw.length * 3 > this.limits.maxValueBytes)
          this.checkSize(index, Buffer.byteLength(raw, "utf8"), "a string");
        return raw;
      case "bytes": {
        if (typeof raw !== "string" || !isBase64(raw)) {
          throw this.wrongType(
            index,
            `expected a base64 string (RFC 4648, with padding), got ${describe(raw)}`,
          );
        }
        const bytes = Buffer.from(raw, "base64");
        this.checkSize(index, bytes.length, "a value");
        return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
      }
      case "float32_vector": {
        if (!Array.isArray(raw))
          throw this.wrongType(index, `expected an array of ${kind.length} numbers, got ${describe(raw)}`);
        if (raw.length !== kind.length) {
          throw this.wrongType(index, `expected an array of ${kind.length} numbers, got ${raw.length}`);
        }
        const out = new Float32Array(kind.length);
        for (let i = 0; i < raw.length; i++) {
          const n = jsonFloat(raw[i]);
          if (n === undefined)
            throw this.wrongType(index, `element ${i} is ${describe(raw[i])}, not a number`);
          out[i] = this.toFloat32(index, n, i);
        }
        return out;
      }
    }
  }

  /** Rounds to float32, refusing a finite number the type cannot hold. */
  toFloat32(index: number, n: number, element?: number): number {
    const f = Math.fround(n);
    if (Number.isFinite(n) && !Number.isFinite(f)) {
      const at = element === undefined ? "" : `element ${element}: `;
      throw this.wrongType(index, `${at}${n} is out of the float32 range`);
    }
    return f;
  }

  /** A 64-bit signed integer from a bigint, refusing anything out of range. */
  checkInt64(index: number, v: bigint): bigint {
    if (v < INT64_MIN || v > INT64_MAX) throw this.wrongType(index, `${v} is out of the int64 range`);
    return v;
  }

  private jsonInt64(index: number, raw: unknown): bigint {
    if (typeof raw === "number") {
      if (Number.isSafeInteger(raw)) return BigInt(raw);
      if (Number.isInteger(raw)) {
        throw this.wrongType(
          index,
          `${raw} is beyond ±2^53 − 1, where JSON numbers lose digits: send it as a decimal string`,
        );
      }
      throw this.wrongType(index, `expected an integer, got ${raw}`);
    }
    if (typeof raw === "string" && /^-?\d{1,20}$/.test(raw)) return this.checkInt64(index, BigInt(raw));
    throw this.wrongType(index, `expected an integer or a decimal string, got ${describe(raw)}`);
  }
}

const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;

function jsonFloat(raw: unknown): number | undefined {
  if (typeof raw === "number") return raw;
  if (raw === "NaN") return NaN;
  if (raw === "Infinity") return Infinity;
  if (raw === "-Infinity") return -Infinity;
  return undefined;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function isBase64(s: string): boolean {
  return BASE64.test(s);
}

/** A short description of a JSON value for messages: never the whole of a long value. */
export function describe(raw: unknown): string {
  if (raw === undefined) return "nothing";
  if (Array.isArray(raw)) return `an array of ${raw.length}`;
  if (typeof raw === "object" && raw !== null) return "an object";
  const text = JSON.stringify(raw);
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}

export function listNames(names: readonly string[]): string {
  const shown = names.slice(0, 20).map((n) => JSON.stringify(n));
  return shown.join(", ") + (names.length > 20 ? ` and ${names.length - 20} more` : "");
}
