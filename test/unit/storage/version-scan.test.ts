import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, openSync, rmSync, writeSync, closeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { TableStore } from "../../../src/storage/table-store.js";
import { VersionWriter, type RowChange } from "../../../src/storage/version-writer.js";
import { MappedSegmentCache } from "../../../src/storage/mapped-segment.js";
import { openSnapshot, type VersionSnapshot } from "../../../src/storage/version-snapshot.js";
import { VersionScanner, type ScanPosition, type ScanShard } from "../../../src/storage/version-scan.js";
import { BatchStatus } from "../../../src/storage/native.js";
import { usersSchema } from "../../helpers/schemas.js";
import { prng } from "../../helpers/prng.js";

const schema = usersSchema;

/** A scanned row: its key ("" when damaged), status, and row bytes as hex. */
interface Scanned {
  key: string;
  status: BatchStatus;
  row: string;
  eventTimeMs: number;
}

/** Reads `chunks` chunks (all when undefined) of a scan; returns the rows and where it stopped. */
function readScan(
  snapshot: VersionSnapshot,
  options: { shard?: ScanShard; from?: ScanPosition; chunkRows: () => number; chunks?: number },
): { rows: Scanned[]; position: ScanPosition; done: boolean } {
  const scanner = new VersionScanner(snapshot, options.shard, options.from);
  const rows: Scanned[] = [];
  for (let c = 0; options.chunks === undefined || c < options.chunks; c++) {
    const max = options.chunkRows();
    const n = scanner.nextChunk(max);
    if (n === 0) break;
    expect(n).toBeLessThanOrEqual(max);
    const { keys, located } = scanner;
    for (let i = 0; i < n; i++) {
      const segment = snapshot.probeOrder[located.segment(i)]!;
      const status = located.status(i);
      const at = located.valueOffset(i);
      rows.push({
        key: keys.bytes.toString("utf8", keys.bounds[2 * i], keys.bounds[2 * i + 1]),
        status,
        row:
          status === BatchStatus.FOUND ? segment.bytes.toString("hex", at, at + located.valueLength(i)) : "",
        eventTimeMs: located.eventTimeMs(i),
      });
    }
  }
  return { rows, position: { ...scanner.position }, done: scanner.done };
}

/** The rows the reference scan (VersionSnapshot.scan, in JS) gives, by key. */
function reference(snapshot: VersionSnapshot): { rows: Map<string, Scanned>; damaged: number } {
  const rows = new Map<string, Scanned>();
  let damaged = 0;
  for (const { key, location } of snapshot.scan()) {
    if (location.status === "corrupt") {
      damaged++;
      continue;
    }
    const b = location.segment!.bytes;
    rows.set(key, {
      key,
      status: BatchStatus.FOUND,
      row: b.toString("hex", location.valueOffset, location.valueOffset + location.valueLength),
      eventTimeMs: location.eventTimeMs,
    });
  }
  return { rows, damaged };
}

/** Each found row keyed once: fails on a key seen twice. */
function byKey(rows: Scanned[]): Map<string, Scanned> {
  const out = new Map<string, Scanned>();
  for (const r of rows.filter((x) => x.status === BatchStatus.FOUND)) {
    expect(out.has(r.key), `key ${JSON.stringify(r.key)} scanned twice`).toBe(false);
    out.set(r.key, r);
  }
  return out;
}

/** Offsets of the records a line pad comes before, by a walk of the segment's data in file order. */
function paddedRecords(segment: VersionSnapshot["probeOrder"][number]): Set<number> {
  const out = new Set<number>();
  const { dataOffset, dataLength } = segment.header;
  for (let at = dataOffset; at < dataOffset + dataLength;) {
    const length = segment.recordLengthAt(at);
    if (length >= 0) {
      at += length;
      continue;
    }
    at = segment.afterLinePad(at);
    if (at < 0) break;
    out.add(at);
  }
  return out;
}

describe("version scans", () => {
  let root: string;
  let store: TableStore;
  let version: number;
  const next = prng(11);

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "strata-scan-"));
    store = new TableStore(root, "users");
    const writer = new VersionWriter(store, schema);
    const keys = ["", "é", "ключ", "k\u0000z"].map((p) => (i: number) => `${p}${i}`);
    const keyOf = (): string => keys[Math.floor(next() * keys.length)]!(Math.floor(next() * 600));
    const row = (key: string, t: number): RowChange => ({
      key,
      eventTimeMs: t,
      values: [BigInt(t), new Float32Array([t, -t]), next() < 0.2 ? null : `c${t % 13}`.repeat(t % 7)],
    });
    async function* base(): AsyncGenerator<RowChange[]> {
      // Repeated keys: a later row of a key replaces the earlier one.
      yield Array.from({ length: 700 }, (_, i) => row(keyOf(), i));
    }
    await writer.importRows(base(), { maxSegmentBytes: 40 * 1024 }); // several base parts
    let t = 1000;
    for (let d = 0; d < 8; d++) {
      const changes = new Map<string, RowChange>();
      for (let i = 0; i < 90; i++) {
        const key = keyOf();
        changes.set(key, next() < 0.25 ? { key, eventTimeMs: t++, values: null } : row(key, t++));
      }
      writer.publishDelta(changes.values(), null, store.requireCurrentVersion());
    }
    version = store.requireCurrentVersion();
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  const open = (): VersionSnapshot =>
    openSnapshot(store, new MappedSegmentCache(), version, { verify: false });
  const randomChunks = (): number => 1 + Math.floor(next() * 120);

  it("reads every live row once, the newest write of each key, in chunks of any size", () => {
    const snapshot = open();
    expect(snapshot.probeOrder.length).toBeGreaterThan(9);
    const expected = reference(snapshot);
    expect(expected.rows.size).toBeGreaterThan(300);
    // Rows of many lengths: the writer put line pads before some records, which the walk steps over.
    expect(snapshot.probeOrder.reduce((n, seg) => n + paddedRecords(seg).size, 0)).toBeGreaterThan(50);
    for (const chunkRows of [() => 1, () => 7, randomChunks, () => 100_000]) {
      const { rows, done } = readScan(snapshot, { chunkRows });
      expect(done).toBe(true);
      expect(rows.filter((r) => r.status !== BatchStatus.FOUND)).toEqual([]);
      expect(byKey(rows)).toEqual(expected.rows);
    }
  });

  it("splits into shards that read every row exactly once between them", () => {
    const snapshot = open();
    const expected = reference(snapshot).rows;
    for (const count of [1, 2, 3, 7, 64]) {
      const all: Scanned[] = [];
      for (let index = 0; index < count; index++)
        all.push(...readScan(snapshot, { shard: { index, count }, chunkRows: randomChunks }).rows);
      expect(byKey(all)).toEqual(expected);
    }
  });

  it("resumes from the position after any chunk, in another scanner", () => {
    const snapshot = open();
    const expected = reference(snapshot).rows;
    for (let trial = 0; trial < 20; trial++) {
      const count = 1 + Math.floor(next() * 4);
      const all: Scanned[] = [];
      for (let index = 0; index < count; index++) {
        const shard = { index, count };
        let from: ScanPosition | undefined;
        for (;;) {
          const part = readScan(snapshot, {
            shard,
            from,
            chunkRows: randomChunks,
            chunks: 1 + Math.floor(next() * 3),
          });
          all.push(...part.rows);
          expect(VersionScanner.isValidPosition(snapshot, shard, part.position)).toBe(true);
          if (part.done) break;
          from = part.position;
        }
      }
      expect(byKey(all)).toEqual(expected);
    }
  });

  it("refuses positions and shards that are not the version's", () => {
    const snapshot = open();
    const whole = { index: 0, count: 1 };
    const segments = snapshot.probeOrder.length;
    for (const pos of [
      { segment: -1, offset: 4096 },
      { segment: segments + 1, offset: 0 },
      { segment: segments, offset: 8 },
      { segment: 0, offset: 4097 },
      { segment: 0, offset: 0 },
      { segment: 0, offset: 1 << 30 },
    ]) {
      expect(VersionScanner.isValidPosition(snapshot, whole, pos), JSON.stringify(pos)).toBe(false);
      expect(() => new VersionScanner(snapshot, whole, pos)).toThrow(RangeError);
    }
    expect(VersionScanner.isValidPosition(snapshot, whole, { segment: segments, offset: 0 })).toBe(true);
    expect(() => new VersionScanner(snapshot, { index: 2, count: 2 })).toThrow(RangeError);
    expect(() => new VersionScanner(snapshot, { index: 0, count: 0 })).toThrow(RangeError);
  });

  it("reads a format 1 version (the bundled sample, written before line pads) as the reference scan does", () => {
    const sample = new TableStore(resolve("sample/segments"), "users");
    const snapshot = openSnapshot(sample, new MappedSegmentCache(), sample.requireCurrentVersion(), {
      verify: false,
    });
    expect(snapshot.probeOrder.map((seg) => seg.header.formatVersion)).toContain(1);
    const expected = reference(snapshot);
    expect(expected.rows.size).toBeGreaterThan(100);
    const { rows, done } = readScan(snapshot, { chunkRows: randomChunks });
    expect(done).toBe(true);
    expect(rows.filter((r) => r.status !== BatchStatus.FOUND)).toEqual([]);
    expect(byKey(rows)).toEqual(expected.rows);
  });

  it("reports a damaged record as one DATA_LOSS row and reads every other row", () => {
    // Damage three live records of the base in the file (the mapping is shared): a value byte of
    // one, the key length of another, so that its header no longer gives its length, and the whole
    // header of a third that a line pad comes before, so that the zeros run from the pad on.
    const snapshot = open();
    const expected = reference(snapshot).rows;
    const found = [...snapshot.scan()].filter((r) => r.location.status === "found");
    const part = snapshot.manifest.segments.findIndex((s) => s.kind === "base" && s.records > 100);
    const base = snapshot.segments[part]!;
    const live = found.filter((r) => r.location.segment === base);
    expect(live.length).toBeGreaterThan(20);
    const recordOf = (valueOffset: number, key: string): number =>
      valueOffset - 24 - ((Buffer.byteLength(key) + 7) & ~7);
    const padded = paddedRecords(base);
    const [a, b] = [live[3]!, live[live.length - 5]!];
    const c = live.find((r) => r !== a && r !== b && padded.has(recordOf(r.location.valueOffset, r.key)))!;
    expect(c).toBeDefined();
    const path = store.segmentPath(snapshot.manifest.segments[part]!.uuid);
    const fd = openSync(path, "r+");
    try {
      writeSync(fd, Buffer.from([base.bytes[a.location.valueOffset]! ^ 0x40]), 0, 1, a.location.valueOffset);
      writeSync(fd, Buffer.from([0, 0]), 0, 2, recordOf(b.location.valueOffset, b.key) + 6);
      writeSync(fd, Buffer.alloc(24), 0, 24, recordOf(c.location.valueOffset, c.key));
    } finally {
      closeSync(fd);
    }
    const damagedSnapshot = open();
    const { rows } = readScan(damagedSnapshot, { chunkRows: randomChunks });
    const lost = rows.filter((r) => r.status === BatchStatus.CORRUPT);
    expect(lost.map((r) => r.key)).toEqual(["", "", ""]);
    const want = new Map(expected);
    for (const r of [a, b, c]) want.delete(r.key);
    expect(byKey(rows)).toEqual(want);
    // Every shard split finds the same.
    for (const count of [2, 5]) {
      const all: Scanned[] = [];
      for (let index = 0; index < count; index++)
        all.push(...readScan(damagedSnapshot, { shard: { index, count }, chunkRows: randomChunks }).rows);
      expect(all.filter((r) => r.status === BatchStatus.CORRUPT)).toHaveLength(3);
      expect(byKey(all)).toEqual(want);
    }
  });
});
