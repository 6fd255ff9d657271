/**
 * Kafka messages to typed delta events for one table (DESIGN §6, docs/deltas.md). Pure: no I/O
 * beyond loading the .proto files once.
 *
 * - The value is JSON unless the `content-type` header says `application/x-protobuf`
 *   (`application/protobuf` and `application/vnd.google.protobuf` too); `application/json` or no
 *   header means JSON, anything else is refused.
 * - The key: the Kafka message key (UTF-8) and the body's `key` must be equal when both are
 *   present; either alone is enough. An empty message key counts as absent. 1 to 1024 UTF-8 bytes.
 * - A message with a key and no value (a Kafka tombstone) deletes the key.
 * - The event time: the body's `event_time_ms`, else the message timestamp.
 *
 * Every refusal throws {@link InvalidDeltaError} with a problem kind and a message that says what
 * was wrong; the ingestor dead-letters the message and goes on.
 */
import { MAX_KEY_BYTES } from "../format/segment-layout.js";
import type { FeatureValue, TableSchema } from "../format/schema.js";
import { InvalidDeltaError } from "./errors.js";
import { DeltaSchema, type DeltaLimits } from "./feature-coercion.js";
import { parseJsonDelta } from "./delta-json.js";
import { parseProtobufDelta } from "./delta-protobuf.js";
import type { DeltaBody } from "./delta-body.js";

/** What the decoder needs of a Kafka message. */
export interface DeltaInput {
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers?: Readonly<Record<string, Buffer | string | undefined>>;
  /** The message timestamp, ms since the epoch: the event time of a delta that names none. */
  readonly timestampMs: number;
}

/** Sets some or all features of a row; the others keep their values (or are null for a new row). */
export interface UpsertDelta {
  readonly op: "upsert";
  readonly key: string;
  /** One entry per feature, in schema order; undefined = not carried by this delta. */
  readonly features: readonly (FeatureValue | undefined)[];
  /** True when every feature is carried: the stored row need not be read. */
  readonly complete: boolean;
  readonly eventTimeMs: number;
}

export interface DeleteDelta {
  readonly op: "delete";
  readonly key: string;
  readonly eventTimeMs: number;
}

export type DeltaEvent = UpsertDelta | DeleteDelta;

export type DeltaEncoding = "json" | "protobuf";

const PROTOBUF_TYPES = new Set([
  "application/x-protobuf",
  "application/protobuf",
  "application/vnd.google.protobuf",
]);
const utf8 = new TextDecoder("utf-8", { fatal: true });

export class DeltaDecoder {
  readonly schema: DeltaSchema;

  constructor(table: TableSchema, limits: DeltaLimits) {
    this.schema = new DeltaSchema(table, limits);
  }

  /** The typed event of one message; throws {@link InvalidDeltaError}. */
  decode(input: DeltaInput): DeltaEvent {
    const messageKey = decodeMessageKey(input.key);
    const value = input.value;
    if (value === null) {
      if (messageKey === undefined) {
        throw new InvalidDeltaError("missing_key", "The message has neither a value nor a key");
      }
      return { op: "delete", key: checkKey(messageKey), eventTimeMs: fallbackTime(input.timestampMs) };
    }
    const limit = this.schema.limits.maxMessageBytes;
    if (value.length > limit) {
      throw new InvalidDeltaError(
        "oversize",
        `Value of ${value.length} bytes is over the limit of ${limit} (STRATA_INGEST_MAX_MESSAGE_BYTES)`,
      );
    }
    const body: DeltaBody =
      encodingOf(input.headers) === "protobuf"
        ? parseProtobufDelta(this.schema, value)
        : parseJsonDelta(this.schema, value);
    if (body.table !== undefined && body.table !== this.schema.table) {
      throw new InvalidDeltaError(
        "wrong_table",
        `The delta names table ${JSON.stringify(body.table)}, but this topic feeds table "${this.schema.table}"`,
      );
    }
    const key = checkKey(resolveKey(messageKey, body.key));
    const eventTimeMs = body.eventTimeMs ?? fallbackTime(input.timestampMs);
    if (body.op === "delete") return { op: "delete", key, eventTimeMs };
    return {
      op: "upsert",
      key,
      features: body.features!,
      complete: body.carried === this.schema.featureCount,
      eventTimeMs,
    };
  }
}

/** The value's encoding from the `content-type` header (any letter case in its name). */
export function encodingOf(headers: DeltaInput["headers"]): DeltaEncoding {
  const raw = contentTypeOf(headers);
  if (raw === undefined) return "json";
  const type = raw.split(";")[0]!.trim().toLowerCase();
  if (type === "application/json" || type === "") return "json";
  if (PROTOBUF_TYPES.has(type)) return "protobuf";
  throw new InvalidDeltaError(
    "unsupported_content_type",
    `Unsupported content-type ${JSON.stringify(raw)}: expected application/json or application/x-protobuf`,
  );
}

/** The `content-type` header's value (any letter case in its name), as text. */
export function contentTypeOf(headers: DeltaInput["headers"]): string | undefined {
  if (!headers) return undefined;
  let raw = headers["content-type"];
  if (raw === undefined) {
    for (const name in headers) {
      if (name.toLowerCase() === "content-type") {
        raw = headers[name];
        break;
      }
    }
  }
  return raw === undefined ? undefined : String(raw);
}

function decodeMessageKey(key: Buffer | null): string | undefined {
  if (key === null || key.length === 0) return undefined;
  try {
    return utf8.decode(key);
  } catch {
    throw new InvalidDeltaError("bad_key", "The Kafka message key is not valid UTF-8");
  }
}

function resolveKey(messageKey: string | undefined, bodyKey: string | undefined): string {
  if (bodyKey !== undefined && messageKey !== undefined && bodyKey !== messageKey) {
    throw new InvalidDeltaError(
      "key_mismatch",
      `"key" ${JSON.stringify(bodyKey)} differs from the Kafka message key ${JSON.stringify(messageKey)}`,
    );
  }
  const key = bodyKey ?? messageKey;
  if (key === undefined) {
    throw new InvalidDeltaError(
      "missing_key",
      `The delta has no key: set "key" in the value or the Kafka message key`,
    );
  }
  return key;
}

function checkKey(key: string): string {
  const bytes = Buffer.byteLength(key, "utf8");
  if (bytes === 0 || bytes > MAX_KEY_BYTES) {
    throw new InvalidDeltaError("bad_key", `The key must be 1 to ${MAX_KEY_BYTES} UTF-8 bytes, got ${bytes}`);
  }
  return key;
}

function fallbackTime(timestampMs: number): number {
  return Number.isSafeInteger(timestampMs) && timestampMs >= 0 ? timestampMs : Date.now();
}
