/**
 * JSON delta events (DESIGN §6):
 *
 *   {"op":"upsert","key":"user:42","features":{"age":31,"emb":[0.1,0.2]},"event_time_ms":1732000000000}
 *   {"op":"delete","key":"user:42"}
 *
 * Fields: `op` (required: "upsert" or "delete"), `key` (optional when the Kafka message key
 * carries it), `features` (upsert: required, an object of feature values by name, possibly a
 * subset; delete: absent), `event_time_ms` (optional), `table` (optional). Any other field is
 * refused, so that a misspelt "feature" is not silently an empty upsert.
 */
import type { FeatureValue } from "../format/schema.js";
import { InvalidDeltaError } from "./errors.js";
import { describe, type DeltaSchema } from "./feature-coercion.js";
import type { DeltaBody } from "./delta-body.js";

const FIELDS = new Set(["op", "key", "features", "event_time_ms", "table"]);

export function parseJsonDelta(schema: DeltaSchema, value: Buffer): DeltaBody {
  let json: unknown;
  try {
    json = JSON.parse(value.toString("utf8"));
  } catch (err) {
    throw new InvalidDeltaError("bad_json", `Value is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new InvalidDeltaError("bad_json", `Value must be a JSON object, got ${describe(json)}`);
  }
  const obj = json as Record<string, unknown>;
  for (const field in obj) {
    if (!FIELDS.has(field)) {
      throw new InvalidDeltaError(
        "unknown_field",
        `Unknown field ${JSON.stringify(field)}: a delta has "op", "key", "features", "event_time_ms" and "table"`,
      );
    }
  }
  const op = obj.op;
  if (op !== "upsert" && op !== "delete") {
    throw new InvalidDeltaError("bad_op", `"op" must be "upsert" or "delete", got ${describe(op)}`);
  }
  const key = obj.key;
  if (key !== undefined && typeof key !== "string") {
    throw new InvalidDeltaError("bad_key", `"key" must be a string, got ${describe(key)}`);
  }
  const table = obj.table;
  if (table !== undefined && typeof table !== "string") {
    throw new InvalidDeltaError("wrong_table", `"table" must be a string, got ${describe(table)}`);
  }
  const eventTime = obj.event_time_ms;
  if (
    eventTime !== undefined &&
    (typeof eventTime !== "number" || !Number.isSafeInteger(eventTime) || eventTime < 0)
  ) {
    throw new InvalidDeltaError(
      "bad_event_time",
      `"event_time_ms" must be a non-negative integer of milliseconds since the epoch, got ${describe(eventTime)}`,
    );
  }
  const raw = obj.features;
  if (op === "delete") {
    if (raw !== undefined) throw new InvalidDeltaError("bad_op", `A delete carries no "features"`);
    return { op, key, features: null, carried: 0, eventTimeMs: eventTime, table };
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new InvalidDeltaError(
      "wrong_type",
      `An upsert needs "features", an object of feature values by name, got ${describe(raw)}`,
    );
  }
  const features = new Array<FeatureValue | undefined>(schema.featureCount).fill(undefined);
  let carried = 0;
  for (const name in raw) {
    const index = schema.indexOf(name);
    features[index] = schema.fromJson(index, (raw as Record<string, unknown>)[name]);
    carried++;
  }
  return { op, key, features, carried, eventTimeMs: eventTime, table };
}
