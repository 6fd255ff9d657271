import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TableStore } from "../../../src/storage/table-store.js";
import { VersionWriter, type RowChange } from "../../../src/storage/version-writer.js";
import { MappedSegmentCache } from "../../../src/storage/mapped-segment.js";
import { openSnapshot } from "../../../src/storage/version-snapshot.js";
import { SegmentCorruptError } from "../../../src/format/errors.js";
import { usersSchema } from "../../helpers/schemas.js";
import { prng } from "../../helpers/prng.js";

const schema = usersSchema;

describe("compaction", () => {
  let root: string;
  let store: TableStore;
  let writer: VersionWriter;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), "strata-compact-"));
    store = new TableStore(root, "users");
    writer = new VersionWriter(store, schema);
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const rowsOf = (version: number): Map<string, unknown> => {
    const snapshot = openSnapshot(store, new MappedSegmentCache(), version, { verify: true, schema });
    const out = new Map<string, unknown>();
    for (const { key, location } of snapshot.scan()) {
      expect(location.status).toBe("found");
      out.set(key, { eventTimeMs: location.eventTimeMs, values: snapshot.decode(location) });
    }
    return out;
  };

  it("keeps exactly the rows the version reads: newest write of each key, deletes dropped", async () => {
    const next = prng(7);
    const keys = ["", "é", "ключ", "k\u0000z"].map((p) => (i: number) => `${p}${i}`);
    const keyOf = (): string => keys[Math.floor(next() * keys.length)]!(Math.floor(next() * 400));
    const row = (key: string, t: number): RowChange => ({
      key,
      eventTimeMs: t,
      values: [BigInt(t), new Float32Array([t, -t]), next() < 0.2 ? null : `c${t % 13}`],
    });
    async function* base(): AsyncGenerator<RowChange[]> {
      yield Array.from({ length: 300 }, (_, i) => row(keyOf(), i));
    }
    await writer.importRows(base(), { maxSegmentBytes: 8192 }); // several base parts
    let t = 1000;
    for (let d = 0; d < 12; d++) {
      const changes = new Map<string, RowChange>();
      for (let i = 0; i < 80; i++) {
        const key = keyOf();
        changes.set(key, next() < 0.25 ? { key, eventTimeMs: t++, values: null } : row(key, t++));
      }
      writer.publishDelta(changes.values(), null, store.requireCurrentVersion());
    }
    const before = store.requireCurrentVersion();
    const expected = rowsOf(before);
    const m = writer.compact({ maxSegmentBytes: 16384 });
    expect(m.segments.every((s) => s.kind === "base" && s.tombstones === 0)).toBe(true);
    expect(m.segments.reduce((n, s) => n + s.records, 0)).toBe(expected.size);
    expect(rowsOf(m.version)).toEqual(expected);
    // Every key the old version knew answers the same in the new one.
    const oldSnap = openSnapshot(store, new MappedSegmentCache(), before, { verify: true, schema });
    const newSnap = openSnapshot(store, new MappedSegmentCache(), m.version, { verify: true, schema });
    for (const make of keys) {
      for (let i = 0; i < 400; i++) expect(newSnap.get(make(i))).toEqual(oldSnap.get(make(i)));
    }
  });

  it("refuses a version with a damaged segment, naming it", async () => {
    async function* base(): AsyncGenerator<RowChange[]> {
      yield [{ key: "a", eventTimeMs: 1, values: [1n, new Float32Array([1, 2]), "x"] }];
    }
    await writer.importRows(base());
    const m = writer.publishDelta(
      [{ key: "b", eventTimeMs: 2, values: [2n, new Float32Array([3, 4]), "y"] }],
      null,
      1,
    );
    const path = store.segmentPath(m.segments[1]!.uuid);
    const bytes = readFileSync(path);
    bytes[4096 + 30]! ^= 1; // inside the record's key or value
    writeFileSync(path, bytes);
    let error: unknown;
    try {
      writer.compact();
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(SegmentCorruptError);
    expect((error as SegmentCorruptError).message).toMatch(/Cannot compact version 2/);
    expect((error as SegmentCorruptError).segmentPath).toBe(path);
    expect(store.requireCurrentVersion()).toBe(2);
  });

  it("leaves out rows whose newest write is older than expireBeforeMs, and only those", async () => {
    const v = (n: number): RowChange["values"] => [BigInt(n), new Float32Array([n, n]), `c${n}`];
    async function* base(): AsyncGenerator<RowChange[]> {
      yield [
        { key: "old", eventTimeMs: 100, values: v(1) },
        { key: "new", eventTimeMs: 900, values: v(2) },
        { key: "refreshed", eventTimeMs: 100, values: v(3) },
        { key: "aged", eventTimeMs: 900, values: v(4) },
        { key: "edge", eventTimeMs: 500, values: v(5) },
      ];
    }
    await writer.importRows(base());
    // A delta: `refreshed` written again recently; `aged` written again with an old event time
    // (a late event: its newest write is what is served).
    writer.publishDelta(
      [
        { key: "refreshed", eventTimeMs: 950, values: v(30) },
        { key: "aged", eventTimeMs: 50, values: v(40) },
      ],
      null,
      1,
    );
    const m = writer.compact({ expireBeforeMs: 500 });
    expect(m.expired).toBe(2);
    expect([...rowsOf(m.version).keys()].sort()).toEqual(["edge", "new", "refreshed"]);
    expect(rowsOf(m.version).get("refreshed")).toEqual({ eventTimeMs: 950, values: v(30) });
    // Without expireBeforeMs nothing is left out.
    expect(writer.compact().expired).toBe(0);
  });
});
