/**
 * The native batch lookup (storage/native.ts) against the JS reference (VersionSnapshot.locate)
 * on the same segments: every key, found, absent, deleted, shadowed, non-ASCII (two-byte and
 * Latin-1 strings), longer than locateOne's stack buffer, under two hash seeds, and with a damaged
 * record.
 */
import { describe, expect, it } from "vitest";
import { encodeSegment } from "../../../src/format/segment-encoder.js";
import { SegmentView } from "../../../src/format/segment-view.js";
import { rowLayout } from "../../../src/format/row-layout.js";
import { schemaHash, type FeatureValue, type TableSchema } from "../../../src/format/schema.js";
import { KeyBatchBuilder } from "../../../src/format/key-batch.js";
import { VersionSnapshot, newRowLocation, type RowLocation } from "../../../src/storage/version-snapshot.js";
import { BatchLocations, BatchStatus } from "../../../src/storage/native.js";
import type { Manifest } from "../../../src/storage/manifest.js";

const schema: TableSchema = {
  name: "users",
  key: "user_id",
  topic: "t",
  maxAgeMs: 0,
  features: [
    { name: "age", type: "int64" },
    { name: "name", type: "string" },
  ],
};
const layout = rowLayout(schema);
const base = { tableName: "users", schemaHash: schemaHash(schema), layout };
// Two-byte strings, one-byte strings beyond ASCII (Latin-1 in V8, two UTF-8 bytes a char), and ASCII.
const key = (i: number): string => (i % 7 === 0 ? `ключ:${i}` : i % 11 === 0 ? `café:${i}` : `user:${i}`);
const values = (i: number, gen: number): FeatureValue[] => [BigInt(i * 10 + gen), `v${gen}-${i}`];

function snapshotOf(parts: Buffer[]): VersionSnapshot {
  const manifest = {
    version: 3,
    schema: { key: "user_id", features: schema.features },
  } as unknown as Manifest;
  return new VersionSnapshot(
    "users",
    manifest,
    "",
    parts.map((b, i) => new SegmentView(b, `part${i}`)),
  );
}

/** What a location says: offsets only when found (an absent key leaves them unspecified). */
const meaning = (l: RowLocation) =>
  l.status === "found" ? { ...l } : { status: l.status, segment: l.status === "corrupt" ? l.segment : null };

function expectSameAnswers(snapshot: VersionSnapshot, keys: string[]): { found: number; corrupt: number } {
  const batch = new KeyBatchBuilder().set(keys);
  const out = new BatchLocations();
  snapshot.locateBatch(batch, out);
  const loc = newRowLocation();
  const tally = { found: 0, corrupt: 0 };
  keys.forEach((k, i) => {
    expect(meaning(snapshot.locateOne(k))).toEqual(meaning(snapshot.locate(k, loc)));
    const status = { found: BatchStatus.FOUND, absent: BatchStatus.ABSENT, corrupt: BatchStatus.CORRUPT }[
      loc.status
    ];
    expect({ key: k, status: out.status(i) }).toEqual({ key: k, status });
    if (loc.status === "found") {
      tally.found++;
      expect(snapshot.probeOrder[out.segment(i)]).toBe(loc.segment);
      expect([out.valueOffset(i), out.valueLength(i), out.eventTimeMs(i)]).toEqual([
        loc.valueOffset,
        loc.valueLength,
        loc.eventTimeMs,
      ]);
    }
    if (loc.status === "corrupt") {
      tally.corrupt++;
      expect(snapshot.probeOrder[out.segment(i)]).toBe(loc.segment);
    }
  });
  return tally;
}

describe("native batch lookup", () => {
  const baseBytes = encodeSegment(
    { ...base, kind: "base" },
    Array.from({ length: 3000 }, (_, i) => ({
      key: key(i),
      eventTimeMs: 1_700_000_000_000 + i,
      values: values(i, 0),
    })),
  ).bytes;
  // Delta 1 updates 0..299 and deletes 300..399; delta 2 (another hash seed) brings 350 back.
  const delta1 = encodeSegment(
    { ...base, kind: "delta" },
    Array.from({ length: 400 }, (_, i) => ({
      key: key(i),
      eventTimeMs: 1_800_000_000_000 + i,
      values: i < 300 ? values(i, 1) : null,
    })),
  ).bytes;
  const delta2 = encodeSegment({ ...base, kind: "delta", hashSeed: 0x1234567 }, [
    { key: key(350), eventTimeMs: -5, values: values(350, 2) },
    { key: key(10), eventTimeMs: 2 ** 52, values: values(10, 2) },
  ]).bytes;
  const allKeys = [...Array.from({ length: 3100 }, (_, i) => key(i)), "", "x".repeat(1024), "user:1\u0000"];

  it("answers exactly as the JS lookup, through deltas, tombstones and two hash seeds", () => {
    const snapshot = snapshotOf([baseBytes, delta1, delta2]);
    const { found } = expectSameAnswers(snapshot, allKeys);
    expect(found).toBe(3000 - 100 + 1);
    // Batches of every size, including one key and keys repeated in a batch.
    for (const n of [1, 2, 99, 100, 101]) expectSameAnswers(snapshot, allKeys.slice(290, 290 + n));
    expectSameAnswers(snapshot, [key(5), key(5), key(350), key(5)]);
  });

  it("reports a damaged record as corrupt, for that key only", () => {
    const damaged = Buffer.from(baseBytes);
    const loc = newRowLocation();
    snapshotOf([damaged]).locate(key(2000), loc);
    damaged[loc.valueOffset + 1]! ^= 0x40;
    const { corrupt } = expectSameAnswers(snapshotOf([damaged, delta1]), allKeys);
    expect(corrupt).toBe(1);
  });

  it("an empty batch and an empty version answer nothing", () => {
    const out = new BatchLocations();
    snapshotOf([baseBytes]).locateBatch(new KeyBatchBuilder().set([]), out);
    snapshotOf([]).locateBatch(new KeyBatchBuilder().set(["a"]), out);
    expect(out.status(0)).toBe(BatchStatus.ABSENT);
  });
});
