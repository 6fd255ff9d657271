/**
 * A batch of Kafka messages decoded into rows, in a form that crosses threads cheaply: the
 * decode worker (decode-worker.ts) turns JSON and protobuf values into row-layout bytes
 * (format/row-layout.ts) while the main thread reads the next batch from Kafka and writes
 * segments. Both directions are a few transferable buffers; no object per message is cloned.
 *
 * {@link decodeBatch} is the one decoding: the worker runs it, and so does the main thread when
 * there is no worker (tests run from sources, or a worker that died).
 */
import { contentTypeOf, type DeltaDecoder, type DeltaInput } from "./delta-event.js";
import { InvalidDeltaError, type DeltaProblem } from "./errors.js";
import { errorMessage } from "../shared/errors.js";
import { measureRow, writeRow, type RowLayout } from "../format/row-layout.js";
import type { FeatureValue } from "../format/schema.js";
import type { DeltaMessage } from "./delta-source.js";

/** The messages of a batch, packed: what decoding needs of each (key, value, timestamp, content type). */
export interface PackedMessages {
  readonly count: number;
  /** Keys and values back to back. */
  readonly bytes: Uint8Array;
  /** Four per message: key start, key length (-1: no key), value start, value length (-1: no value). */
  readonly spans: Int32Array;
  readonly timestamps: Float64Array;
  /** The `content-type` header per message, or null when no message has one. */
  readonly contentTypes: (string | undefined)[] | null;
}

/** What a message decoded to. */
export const INVALID = 0;
export const DELETE = 1;
/** An upsert carrying every feature: its row is the whole row. */
export const UPSERT = 2;
/** An upsert carrying some features: its row holds them, `carried` says which. */
export const PATCH = 3;

export interface DecodedBatch {
  readonly count: number;
  /** Per message: {@link INVALID}, {@link DELETE}, {@link UPSERT} or {@link PATCH}. */
  readonly kinds: Uint8Array;
  /** Per message: the entity key ("" when invalid). */
  readonly keys: string[];
  readonly eventTimes: Float64Array;
  /** Encoded rows, each 8-aligned; a PATCH's row is followed by its carried mask. */
  readonly rows: Uint8Array;
  /** Two per message: row start and row length in `rows` (0, 0 without a row). */
  readonly rowSpans: Int32Array;
  /** The refusals, by message index. */
  readonly problems: { index: number; problem: DeltaProblem; reason: string }[];
}

/** Bytes of a PATCH's carried mask: bit (i % 8) of byte (i / 8) set = feature i is carried. */
export const carriedMaskBytes = (layout: RowLayout): number => layout.nullBytes;

export function packMessages(messages: readonly DeltaMessage[]): PackedMessages {
  const count = messages.length;
  let total = 0;
  let typed = false;
  for (const m of messages) {
    total += (m.key?.length ?? 0) + (m.value?.length ?? 0);
    if (m.headers !== undefined && contentTypeOf(m.headers) !== undefined) typed = true;
  }
  const bytes = new Uint8Array(total);
  const spans = new Int32Array(count * 4);
  const timestamps = new Float64Array(count);
  const contentTypes = typed ? new Array<string | undefined>(count) : null;
  let at = 0;
  for (let i = 0; i < count; i++) {
    const m = messages[i]!;
    at = put(m.key, bytes, at, spans, i * 4);
    at = put(m.value, bytes, at, spans, i * 4 + 2);
    timestamps[i] = m.timestampMs;
    if (contentTypes) contentTypes[i] = contentTypeOf(m.headers);
  }
  return { count, bytes, spans, timestamps, contentTypes };
}

function put(part: Buffer | null, bytes: Uint8Array, at: number, spans: Int32Array, s: number): number {
  spans[s] = at;
  if (part === null) {
    spans[s + 1] = -1;
    return at;
  }
  bytes.set(part, at);
  spans[s + 1] = part.length;
  return at + part.length;
}

/** The messages {@link packMessages} packed, as views of its bytes. */
export function unpackMessages(packed: PackedMessages): DeltaInput[] {
  const { spans } = packed;
  const source = Buffer.from(packed.bytes.buffer, packed.bytes.byteOffset, packed.bytes.byteLength);
  const part = (s: number): Buffer | null =>
    spans[s + 1]! < 0 ? null : source.subarray(spans[s]!, spans[s]! + spans[s + 1]!);
  const inputs = new Array<DeltaInput>(packed.count);
  for (let i = 0; i < packed.count; i++) {
    const contentType = packed.contentTypes?.[i];
    inputs[i] = {
      key: part(i * 4),
      value: part(i * 4 + 2),
      headers: contentType === undefined ? undefined : { "content-type": contentType },
      timestampMs: packed.timestamps[i]!,
    };
  }
  return inputs;
}

/** The buffers {@link packMessages} made, for `postMessage`'s transfer list. */
export function transferablesOf(packed: PackedMessages | DecodedBatch): ArrayBuffer[] {
  const views =
    "spans" in packed
      ? [packed.bytes, packed.spans, packed.timestamps]
      : [packed.kinds, packed.eventTimes, packed.rows, packed.rowSpans];
  return views.map((v) => v.buffer as ArrayBuffer);
}

/**
 * Decodes every message; a refused one is recorded in `problems` with its reason, never thrown.
 * The rows are checked and encoded against `layout` here, so the main thread only copies them.
 */
export function decodeBatch(
  decoder: DeltaDecoder,
  layout: RowLayout,
  messages: readonly DeltaInput[],
): DecodedBatch {
  const count = messages.length;
  const kinds = new Uint8Array(count);
  const keys = new Array<string>(count);
  const eventTimes = new Float64Array(count);
  const rowSpans = new Int32Array(count * 2);
  const problems: DecodedBatch["problems"] = [];
  const rows = new RowBuffer();
  const maskBytes = carriedMaskBytes(layout);
  const full = new Array<FeatureValue>(layout.slots.length);
  for (let i = 0; i < count; i++) {
    keys[i] = "";
    try {
      const event = decoder.decode(messages[i]!);
      keys[i] = event.key;
      eventTimes[i] = event.eventTimeMs;
      if (event.op === "delete") {
        kinds[i] = DELETE;
        continue;
      }
      const features = event.features;
      let values = features as readonly FeatureValue[];
      if (!event.complete) {
        for (let f = 0; f < full.length; f++) full[f] = features[f] ?? null;
        values = full;
      }
      const length = measureRow(layout, values);
      const at = rows.reserve(length + (event.complete ? 0 : maskBytes));
      writeRow(layout, values, rows.bytes, at, rows.floats);
      if (!event.complete) {
        for (let f = 0; f < features.length; f++) {
          if (features[f] !== undefined) rows.bytes[at + length + (f >> 3)]! |= 1 << (f & 7);
        }
      }
      rows.commit(at, length + (event.complete ? 0 : maskBytes));
      kinds[i] = event.complete ? UPSERT : PATCH;
      rowSpans[i * 2] = at;
      rowSpans[i * 2 + 1] = length;
    } catch (err) {
      kinds[i] = INVALID;
      problems.push(
        err instanceof InvalidDeltaError
          ? { index: i, problem: err.problem, reason: err.message }
          : {
              index: i,
              problem: "internal_error",
              reason: `The decoder failed unexpectedly: ${errorMessage(err)}`,
            },
      );
    }
  }
  return { count, kinds, keys, eventTimes, rows: rows.done(), rowSpans, problems };
}

/** Growing, zeroed, 8-aligned room for rows (writeRow leaves null slots unwritten). */
class RowBuffer {
  bytes = Buffer.alloc(64 * 1024);
  floats = new Float32Array(this.bytes.buffer, this.bytes.byteOffset, this.bytes.length >> 2);
  private used = 0;

  reserve(length: number): number {
    if (this.used + length > this.bytes.length) {
      const grown = Buffer.alloc(Math.max(this.bytes.length * 2, this.used + length + 1024));
      this.bytes.copy(grown, 0, 0, this.used);
      this.bytes = grown;
      this.floats = new Float32Array(grown.buffer, grown.byteOffset, grown.length >> 2);
    }
    return this.used;
  }

  commit(at: number, length: number): void {
    this.used = at + ((length + 7) & ~7);
  }

  /** The rows written, in a buffer of their own (transferable). */
  done(): Uint8Array {
    return new Uint8Array(this.bytes.buffer.slice(this.bytes.byteOffset, this.bytes.byteOffset + this.used));
  }
}
