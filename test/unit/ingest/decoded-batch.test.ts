// decodeBatch (what the decode worker runs) against DeltaDecoder.decode, message by message: the
// same keys, event times, refusals and values, with a PATCH carrying exactly the features its
// delta carried. Then the worker itself (a build of decode-pool.ts, since a worker cannot load a
// .ts module): its batches equal the inline ones, and a batch it cannot decode comes back null.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { DeltaDecoder, type DeltaEvent } from "../../../src/ingest/delta-event.js";
import {
  carriedMaskBytes,
  decodeBatch,
  DELETE,
  INVALID,
  packMessages,
  PATCH,
  unpackMessages,
  UPSERT,
  type DecodedBatch,
} from "../../../src/ingest/decoded-batch.js";
import type { DeltaMessage } from "../../../src/ingest/delta-source.js";
import { InvalidDeltaError } from "../../../src/ingest/errors.js";
import { readFeature, rowLayout } from "../../../src/format/row-layout.js";
import type { FeatureValue } from "../../../src/format/schema.js";
import { deltaSchema } from "../../helpers/schemas.js";
import { silentLogger } from "../../../src/shared/logger.js";
import { buildEntry, type BuiltEntry } from "../../helpers/build-entry.js";

const schema = deltaSchema;
const limits = { maxMessageBytes: 4096, maxValueBytes: 64 };
const decoder = new DeltaDecoder(schema, limits);
const layout = rowLayout(schema);

const featureValue: Record<string, fc.Arbitrary<unknown>> = {
  age: fc.oneof(fc.integer(), fc.constant("-9223372036854775808"), fc.constant(1.5)),
  score: fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.constant("NaN")),
  ctr: fc.oneof(fc.float({ noNaN: true, noDefaultInfinity: true }), fc.constant(1e300)),
  active: fc.oneof(fc.boolean(), fc.constant("yes")),
  city: fc.oneof(fc.string({ maxLength: 8 }), fc.constant("ü".repeat(40))),
  blob: fc.oneof(fc.constant("AAEC"), fc.constant("not base64")),
  emb: fc.oneof(fc.constant([0.1, 0.2, 0.3]), fc.constant([1, 2])),
};
const features = fc
  .dictionary(fc.constantFrom(...Object.keys(featureValue), "nope"), fc.constant(null), { maxKeys: 8 })
  .chain((picked) =>
    fc.record(
      Object.fromEntries(
        Object.keys(picked).map((name) => [
          name,
          fc.oneof(
            { weight: 1, arbitrary: fc.constant(null) },
            { weight: 6, arbitrary: featureValue[name] ?? fc.integer() },
          ),
        ]),
      ),
    ),
  );
const body = fc.oneof(
  fc.record({ op: fc.constant("upsert"), features, event_time_ms: fc.option(fc.nat(), { nil: undefined }) }),
  fc.record({ op: fc.constant("delete") }),
  fc.constantFrom("{not json", "[]", '{"op":"merge"}'),
);
const message = fc
  .record({
    key: fc.option(fc.constantFrom("user:1", "user:2", "ключ", ""), { nil: null }),
    body: fc.option(body, { nil: null, freq: 10 }),
    contentType: fc.constantFrom(undefined, "application/json", "text/plain"),
  })
  .map(({ key, body, contentType }): DeltaMessage => ({
    offset: 0n,
    key: key === null ? null : Buffer.from(key),
    value: body === null ? null : Buffer.from(typeof body === "string" ? body : JSON.stringify(body)),
    headers: contentType === undefined ? {} : { "Content-Type": Buffer.from(contentType) },
    timestampMs: 1_700_000_000_000,
  }));

/** Bytes as a plain array: a Buffer and a Uint8Array of the same bytes are the same value. */
const plain = (v: FeatureValue): unknown => (v instanceof Uint8Array ? [...v] : v);

function decodeOne(m: DeltaMessage): DeltaEvent | InvalidDeltaError {
  try {
    return decoder.decode(m);
  } catch (err) {
    return err as InvalidDeltaError;
  }
}

/** Checks decoded message `i` against the reference decoder. */
function expectSame(batch: DecodedBatch, i: number, m: DeltaMessage): void {
  const want = decodeOne(m);
  const problem = batch.problems.find((p) => p.index === i);
  if (want instanceof InvalidDeltaError) {
    expect(batch.kinds[i]).toBe(INVALID);
    expect(problem).toEqual({ index: i, problem: want.problem, reason: want.message });
    return;
  }
  expect(problem).toBeUndefined();
  expect(batch.keys[i]).toBe(want.key);
  expect(batch.eventTimes[i]).toBe(want.eventTimeMs);
  if (want.op === "delete") {
    expect(batch.kinds[i]).toBe(DELETE);
    return;
  }
  expect(batch.kinds[i]).toBe(want.complete ? UPSERT : PATCH);
  const at = batch.rowSpans[i * 2]!;
  const length = batch.rowSpans[i * 2 + 1]!;
  const rows = Buffer.from(batch.rows.buffer, batch.rows.byteOffset, batch.rows.byteLength);
  const row = rows.subarray(at, at + length);
  const mask = rows.subarray(at + length, at + length + carriedMaskBytes(layout));
  for (const slot of layout.slots) {
    const carried = want.complete || (mask[slot.index >> 3]! & (1 << (slot.index & 7))) !== 0;
    expect(carried).toBe(want.features[slot.index] !== undefined);
    if (carried) {
      expect(plain(readFeature(layout, slot, row, 0, length))).toEqual(plain(want.features[slot.index]!));
    }
  }
}

describe("decodeBatch", () => {
  it("decodes every message as DeltaDecoder does: keys, times, rows, carried features, refusals (property)", () => {
    fc.assert(
      fc.property(fc.array(message, { maxLength: 40 }), (messages) => {
        const batch = decodeBatch(decoder, layout, messages);
        expect(batch.count).toBe(messages.length);
        messages.forEach((m, i) => expectSame(batch, i, m));
      }),
      { numRuns: 300 },
    );
  });

  it("packs messages into buffers that unpack to the same keys, values, timestamps and content types", () => {
    const messages: DeltaMessage[] = [
      { offset: 0n, key: Buffer.from("a"), value: null, headers: {}, timestampMs: 5 },
      {
        offset: 1n,
        key: null,
        value: Buffer.from("{}"),
        headers: { "Content-Type": "application/x-protobuf" },
        timestampMs: 6,
      },
      { offset: 2n, key: Buffer.alloc(0), value: Buffer.alloc(0), headers: {}, timestampMs: 7 },
    ];
    const inputs = unpackMessages(packMessages(messages));
    expect(
      inputs.map((m) => [m.key?.toString() ?? null, m.value?.toString() ?? null, m.timestampMs]),
    ).toEqual([
      ["a", null, 5],
      [null, "{}", 6],
      ["", "", 7],
    ]);
    expect(inputs.map((m) => m.headers?.["content-type"])).toEqual([
      undefined,
      "application/x-protobuf",
      undefined,
    ]);
  });
});

describe("the decode worker", () => {
  let entry: BuiltEntry;
  let DecodePool: typeof import("../../../src/ingest/decode-pool.js").DecodePool;

  beforeAll(async () => {
    entry = buildEntry("ingest/decode-pool.ts");
    ({ DecodePool } = (await import(entry.path)) as typeof import("../../../src/ingest/decode-pool.js"));
  }, 120_000);
  afterAll(() => entry?.remove());

  it("decodes batches in a worker thread exactly as inline, in parallel, and hands back what it cannot decode", async () => {
    const pool = new DecodePool([schema], limits, silentLogger);
    try {
      const batches = fc.sample(fc.array(message, { minLength: 1, maxLength: 60 }), { numRuns: 20, seed: 7 });
      const decoded = await Promise.all(batches.map((b) => pool.decode(schema.name, b)));
      decoded.forEach((batch, n) => {
        expect(batch).not.toBeNull();
        batches[n]!.forEach((m, i) => expectSame(batch!, i, m));
      });
      expect(await pool.decode("no_such_table", batches[0]!)).toBeNull();
    } finally {
      await pool.close();
    }
    // After close, the caller decodes.
    expect(await pool.decode(schema.name, [])).toBeNull();
  });

  it("decodes nothing off the event loop when turned off", async () => {
    const pool = new DecodePool([schema], limits, silentLogger, false);
    expect(await pool.decode(schema.name, [])).toBeNull();
    await pool.close();
  });
});
