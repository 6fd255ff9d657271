/**
 * Protobuf delta events: `strata.v1.FeatureDelta` of proto/strata/v1/delta.proto, whose values are
 * the `FeatureValue` oneof of the gRPC API. Decoded with protobufjs from the .proto files at run
 * time (loaded once per process), so the files stay the one definition.
 *
 * Types: a float32 or float64 feature takes `float32_value` or `float64_value` (a float32 feature
 * rounds, and refuses a finite number beyond its range); int64 takes `int64_value`; bool, string,
 * bytes and float32[N] take theirs; any feature takes `null_value`.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import protobuf from "protobufjs";
import type { FeatureValue } from "../format/schema.js";
import { InvalidDeltaError } from "./errors.js";
import type { DeltaSchema } from "./feature-coercion.js";
import type { DeltaBody } from "./delta-body.js";

const DELTA_PROTO = "strata/v1/delta.proto";

/**
 * proto/ at the package root: two levels above src/ingest/ and dist/ingest/, but looked for
 * upwards so that a build elsewhere under the package (a test build) finds it too.
 */
function protoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let up = 0; up < 6; up++) {
    const candidate = join(dir, "proto");
    if (existsSync(join(candidate, DELTA_PROTO))) return candidate;
    dir = dirname(dir);
  }
  throw new Error(`Cannot find proto/${DELTA_PROTO} above ${fileURLToPath(import.meta.url)}`);
}

const OP_UPSERT = 1;
const OP_DELETE = 2;

/** protobufjs decodes int64 as a Long when the `long` package is present, else as a number. */
type Int64 = number | { low: number; high: number; unsigned?: boolean };

interface ProtoValue {
  null_value?: number;
  float32_value?: number;
  float64_value?: number;
  int64_value?: Int64;
  bool_value?: boolean;
  string_value?: string;
  bytes_value?: Uint8Array;
  float32_vector_value?: { values?: number[] };
}

interface ProtoDelta {
  op: number;
  key: string;
  features: Record<string, ProtoValue>;
  event_time_ms?: Int64 | null;
  table: string;
}

let featureDelta: protobuf.Type | null = null;

/** The FeatureDelta type, loaded on first use. */
export function featureDeltaType(): protobuf.Type {
  if (featureDelta) return featureDelta;
  const dir = protoRoot();
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => join(dir, target);
  root.loadSync(DELTA_PROTO, { keepCase: true });
  featureDelta = root.lookupType("strata.v1.FeatureDelta");
  return featureDelta;
}

export function parseProtobufDelta(schema: DeltaSchema, value: Buffer): DeltaBody {
  let msg: ProtoDelta;
  try {
    msg = featureDeltaType().decode(value) as unknown as ProtoDelta;
  } catch (err) {
    throw new InvalidDeltaError(
      "bad_protobuf",
      `Value is not a strata.v1.FeatureDelta: ${(err as Error).message}`,
    );
  }
  const op = msg.op === OP_UPSERT ? "upsert" : msg.op === OP_DELETE ? "delete" : null;
  if (op === null)
    throw new InvalidDeltaError("bad_op", `"op" must be OP_UPSERT or OP_DELETE, got ${msg.op}`);
  const key = msg.key === "" ? undefined : msg.key;
  const table = msg.table === "" ? undefined : msg.table;
  let eventTimeMs: number | undefined;
  // Presence, not value: proto3 `optional` fields are own properties only when they were sent.
  if (Object.prototype.hasOwnProperty.call(msg, "event_time_ms") && msg.event_time_ms != null) {
    const t = toBigInt(msg.event_time_ms);
    if (t < 0n || t > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new InvalidDeltaError(
        "bad_event_time",
        `"event_time_ms" must be a non-negative number of milliseconds, got ${t}`,
      );
    }
    eventTimeMs = Number(t);
  }
  const names = Object.keys(msg.features ?? {});
  if (op === "delete") {
    if (names.length > 0) throw new InvalidDeltaError("bad_op", `A delete carries no "features"`);
    return { op, key, features: null, carried: 0, eventTimeMs, table };
  }
  const features = new Array<FeatureValue | undefined>(schema.featureCount).fill(undefined);
  for (const name of names) {
    const index = schema.indexOf(name);
    features[index] = fromProto(schema, index, msg.features[name]!);
  }
  return { op, key, features, carried: names.length, eventTimeMs, table };
}

function fromProto(schema: DeltaSchema, index: number, v: ProtoValue): FeatureValue {
  const kind = schema.kinds[index]!;
  const set = setField(v);
  if (set === null)
    throw schema.wrongType(index, "the FeatureValue holds no value (set null_value for null)");
  if (set === "null_value") return null;
  const expect = (...fields: string[]): never => {
    throw schema.wrongType(index, `expected ${fields.join(" or ")}, got ${set}`);
  };
  switch (kind.type) {
    case "float32":
    case "float64": {
      if (set !== "float32_value" && set !== "float64_value") return expect("float32_value", "float64_value");
      const n = (v[set] as number) ?? 0;
      return kind.type === "float32" ? schema.toFloat32(index, n) : n;
    }
    case "int64":
      if (set !== "int64_value") return expect("int64_value");
      return schema.checkInt64(index, toBigInt(v.int64_value!));
    case "bool":
      if (set !== "bool_value") return expect("bool_value");
      return v.bool_value === true;
    case "string": {
      if (set !== "string_value") return expect("string_value");
      const s = v.string_value ?? "";
      if (s.length * 3 > schema.limits.maxValueBytes)
        schema.checkSize(index, Buffer.byteLength(s, "utf8"), "a string");
      return s;
    }
    case "bytes": {
      if (set !== "bytes_value") return expect("bytes_value");
      const b = v.bytes_value ?? new Uint8Array(0);
      schema.checkSize(index, b.length, "a value");
      // A copy: the decoded bytes are a view of the Kafka fetch buffer, which must not be kept alive.
      return new Uint8Array(b);
    }
    case "float32_vector": {
      if (set !== "float32_vector_value") return expect("float32_vector_value");
      const values = v.float32_vector_value?.values ?? [];
      if (values.length !== kind.length)
        throw schema.wrongType(index, `expected ${kind.length} values, got ${values.length}`);
      return Float32Array.from(values);
    }
  }
}

const VALUE_FIELDS = [
  "null_value",
  "float32_value",
  "float64_value",
  "int64_value",
  "bool_value",
  "string_value",
  "bytes_value",
  "float32_vector_value",
] as const;

/** The oneof member that is set: protobufjs puts decoded fields on the instance, defaults on the prototype. */
function setField(v: ProtoValue): (typeof VALUE_FIELDS)[number] | null {
  for (const f of VALUE_FIELDS) if (Object.prototype.hasOwnProperty.call(v, f) && v[f] != null) return f;
  return null;
}

function toBigInt(v: Int64): bigint {
  if (typeof v === "number") return BigInt(v);
  const wide = (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0);
  return v.unsigned ? wide : BigInt.asIntN(64, wide);
}
