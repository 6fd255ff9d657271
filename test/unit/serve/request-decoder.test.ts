/**
 * The hand-written GetFeaturesRequest decoder (serve/request-decoder.ts) against protobufjs on the
 * same bytes: every request protobufjs encodes decodes to the same fields, keys included (short
 * ASCII keys take a fast path, others the general one), and no byte string makes it throw.
 */
import { isUtf8 } from "node:buffer";
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import protobuf from "protobufjs";
import { decodeGetFeaturesRequest, releaseGetFeaturesRequest } from "../../../src/serve/request-decoder.js";

const root = protobuf.loadSync("proto/strata/v1/feature_store.proto");
const Request = root.lookupType("strata.v1.GetFeaturesRequest");

const keyText = fc.oneof(
  fc.string({ maxLength: 20 }), // ASCII, the fast path
  fc.string({ minLength: 120, maxLength: 300 }), // lengths past one varint byte
  fc.string({ unit: "grapheme", maxLength: 20 }), // beyond ASCII
);

describe("GetFeaturesRequest decoder", () => {
  it("decodes whatever protobufjs encodes to the same fields", () => {
    fc.assert(
      fc.property(
        fc.record({
          table: fc.string({ maxLength: 10 }),
          keys: fc.array(keyText, { maxLength: 40 }),
          features: fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }),
          requestId: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
          version: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
          encoding: fc.integer({ min: 0, max: 1 }),
        }),
        (r) => {
          const bytes = Buffer.from(
            Request.encode(
              Request.fromObject({ ...r, requestId: r.requestId.toString(), version: r.version }),
            ).finish(),
          );
          const d = decodeGetFeaturesRequest(bytes);
          expect(d.invalid).toBeUndefined();
          const keys = Array.from({ length: d.keys.count }, (_, i) =>
            d.keys.bytes.toString("utf8", d.keys.bounds[2 * i], d.keys.bounds[2 * i + 1]),
          );
          expect({ table: d.table, keys, features: d.features }).toEqual({
            table: r.table,
            keys: r.keys,
            features: r.features,
          });
          expect(BigInt(d.requestIdHi) * 2n ** 32n + BigInt(d.requestIdLo)).toBe(r.requestId);
          expect([d.version, d.encoding]).toEqual([r.version, r.encoding]);
        },
      ),
    );
  });

  it("answers any bytes with a request or a reason, never an exception", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const d = decodeGetFeaturesRequest(Buffer.from(bytes));
        if (d.invalid !== undefined) expect(d.invalid).toMatch(/^Malformed GetFeaturesRequest: /);
      }),
    );
  });

  it("refuses a request exactly when one of its keys is not UTF-8, wherever it is among ASCII keys", () => {
    const key = fc.oneof(
      fc.string({ maxLength: 12 }).map((k) => Buffer.from(k)),
      fc.uint8Array({ maxLength: 6 }).map((k) => Buffer.from(k)), // often not UTF-8
    );
    fc.assert(
      fc.property(fc.array(key, { maxLength: 30 }), (keys) => {
        const d = decodeGetFeaturesRequest(
          Buffer.concat(keys.flatMap((k) => [Buffer.from([0x12, k.length]), k])),
        );
        if (!keys.every((k) => isUtf8(k))) {
          expect(d.invalid).toBe("Malformed GetFeaturesRequest: key is not valid UTF-8");
          return;
        }
        expect(d.invalid).toBeUndefined();
        const decoded = Array.from({ length: d.keys.count }, (_, i) =>
          d.keys.bytes.subarray(d.keys.bounds[2 * i], d.keys.bounds[2 * i + 1]),
        );
        expect(decoded).toEqual(keys);
      }),
    );
  });

  it("reads keys that alternate ASCII and not in time linear in the keys", () => {
    // 400,000 keys (a 2.4 MB request, within the request size limit): linear, tens of ms; a
    // decoder that rescanned the rest of the request after each key that is not ASCII took minutes.
    const parts = Array.from({ length: 400_000 }, (_, i) => {
      const key = Buffer.from(i % 2 === 0 ? "a" : "é");
      return Buffer.concat([Buffer.from([0x12, key.length]), key]);
    });
    const t0 = performance.now();
    const d = decodeGetFeaturesRequest(Buffer.concat(parts));
    expect(performance.now() - t0).toBeLessThan(3000);
    expect([d.invalid, d.keys.count]).toEqual([undefined, 400_000]);
  });

  it("names what is wrong: invalid UTF-8, truncation", () => {
    const reason = (bytes: number[]) => decodeGetFeaturesRequest(Buffer.from(bytes)).invalid;
    expect(reason([0x12, 2, 0xff, 0xfe])).toBe("Malformed GetFeaturesRequest: key is not valid UTF-8");
    expect(reason([0x12, 2, 0x61, 0x62, 0x12, 5, 0x61])).toBe("Malformed GetFeaturesRequest: truncated key");
    expect(reason([0x12])).toBe("Malformed GetFeaturesRequest: truncated varint");
    expect(reason([0x0a, 1, 0xc3])).toBe("Malformed GetFeaturesRequest: table is not valid UTF-8");
  });

  it("reuses the key bounds of released requests, and never those of a request still held", () => {
    const encode = (keys: string[]): Buffer =>
      Buffer.from(Request.encode(Request.fromObject({ table: "t", keys })).finish());
    const bytes = encode(Array.from({ length: 100 }, (_, i) => `user:${i}`));
    const other = encode(Array.from({ length: 100 }, (_, i) => `k${i}`)); // other bounds
    const decodeMany = (b: Buffer, release: boolean) =>
      Array.from({ length: 2000 }, () => {
        const req = decodeGetFeaturesRequest(b);
        expect(req.keys.count).toBe(100);
        const bounds = req.keys.bounds;
        if (release) {
          releaseGetFeaturesRequest(req);
          expect(req.keys.count).toBe(0);
          releaseGetFeaturesRequest(req); // a second release does nothing
        }
        return { req, bounds };
      });
    // 2000 requests take about 7 MiB of bounds (a u32 per request byte: 2000 × 4 × 893 B):
    // released, they fit in two slabs of 1 MiB; held, they need at least seven (eight when the
    // first starts part-used, which made a bound of eight fail now and then).
    expect(new Set(decodeMany(bytes, true).map((r) => r.bounds.buffer)).size).toBeLessThanOrEqual(2);
    const held = decodeMany(bytes, false);
    const heldBytes = held.reduce((n, r) => n + r.bounds.byteLength, 0);
    expect(new Set(held.map((r) => r.bounds.buffer)).size).toBeGreaterThanOrEqual(
      Math.ceil(heldBytes / (1 << 20)),
    );
    const want = [...held[0]!.bounds.subarray(0, 200)];
    decodeMany(other, true);
    for (const { req } of held) expect([...req.keys.bounds.subarray(0, 200)]).toEqual(want);
  });
});
