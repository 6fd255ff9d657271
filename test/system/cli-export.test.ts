/**
 * strata export: every row of a version as JSON lines that `strata import --format jsonl` reads
 * back to the same rows, whole or in shards; damaged records are left out and said.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runStrata } from "../helpers/cli.js";
import { parseTablesConfig } from "../../src/config/tables-config.js";
import { TableStore } from "../../src/storage/table-store.js";
import { VersionWriter, type RowChange } from "../../src/storage/version-writer.js";
import { MappedSegmentCache } from "../../src/storage/mapped-segment.js";
import { openSnapshot } from "../../src/storage/version-snapshot.js";

const tables = {
  tables: [
    {
      name: "t",
      key: "id",
      features: [
        { name: "f32", type: "float32" },
        { name: "f64", type: "float64" },
        { name: "i", type: "int64" },
        { name: "b", type: "bool" },
        { name: "s", type: "string" },
        { name: "by", type: "bytes" },
        { name: "v", type: "float32[3]" },
      ],
    },
  ],
};
const N = 2500;

const special = [NaN, Infinity, -Infinity, 3.4e38, 1e-45, 0.1];
const row = (i: number, gen: number): RowChange => ({
  key: i % 5 === 0 ? `ключ:${i}` : `k,"${i}"\n`,
  eventTimeMs: 1_700_000_000_000 + i * 7 + gen,
  values: [
    i % 9 === 0 ? special[i % special.length]! : Math.fround(i / 3 + gen),
    i % 13 === 0 ? -Infinity : i * 1e-7 + gen,
    i % 17 === 0 ? 9223372036854775807n - BigInt(i) : BigInt(i * gen - 5000),
    i % 2 === 0,
    i % 11 === 0 ? null : i % 7 === 0 ? "" : `s${i} "quoted", é`,
    i % 3 === 0 ? null : Buffer.from([i & 255, 0, gen]),
    i % 19 === 0 ? null : new Float32Array([i, NaN, -i / 7]),
  ],
});

describe("strata export", () => {
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "strata-export-"));
    writeFileSync(join(dir, "tables.json"), JSON.stringify(tables));
    // A base and deltas with updates and deletes: the export reads what the version reads.
    const schema = parseTablesConfig(tables).tables[0]!;
    const store = new TableStore(join(dir, "live"), "t");
    const writer = new VersionWriter(store, schema);
    await writer.importRows(
      (async function* () {
        yield Array.from({ length: N }, (_, i) => row(i, 0));
      })(),
    );
    for (let d = 1; d <= 3; d++) {
      const changes = Array.from({ length: 200 }, (_, j): RowChange => {
        const i = j * 12 + d;
        return j % 4 === 0 ? { key: row(i, d).key, eventTimeMs: 1, values: null } : row(i, d);
      });
      writer.publishDelta(changes, null, store.requireCurrentVersion());
    }
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const strata = (dataDir: string, ...args: string[]) => runStrata(dir, dataDir, args);

  /** Every row of a data dir's current version: key → event time and values. */
  const rowsOf = (dataDir: string): Map<string, unknown> => {
    const store = new TableStore(join(dir, dataDir), "t");
    const snapshot = openSnapshot(store, new MappedSegmentCache(), store.requireCurrentVersion(), {
      verify: true,
    });
    const rows = new Map<string, unknown>();
    for (const { key, location } of snapshot.scan()) {
      expect(location.status).toBe("found");
      rows.set(key, [location.eventTimeMs, snapshot.decode(location)]);
    }
    return rows;
  };

  it("writes JSON lines that an import reads back to exactly the same rows", async () => {
    const out = join(dir, "t.jsonl");
    const exported = await strata("live", "--json", "export", "t", "--out", out);
    expect(exported.code, exported.stderr).toBe(0);
    const live = rowsOf("live");
    expect(JSON.parse(exported.stdout)).toMatchObject({
      table: "t",
      version: 4,
      rows: live.size,
      data_loss: 0,
    });
    expect(readFileSync(out, "utf8").split("\n").filter(Boolean)).toHaveLength(live.size);
    const imported = await strata("copy", "import", "t", out, "--format", "jsonl");
    expect(imported.code, imported.stderr).toBe(0);
    expect(rowsOf("copy")).toEqual(live);
  });

  it("writes to stdout, a feature subset, and shards whose lines together are the whole export", async () => {
    const whole = await strata("live", "export", "t");
    expect(whole.code, whole.stderr).toBe(0);
    expect(whole.stderr).toMatch(/^t: exported \d+ rows of v4\n$/);
    const lines = whole.stdout.split("\n").filter(Boolean);
    const parts: string[] = [];
    for (let index = 0; index < 3; index++) {
      const part = await strata("live", "export", "t", "--shard", `${index}/3`);
      expect(part.code, part.stderr).toBe(0);
      parts.push(...part.stdout.split("\n").filter(Boolean));
    }
    expect(parts.sort()).toEqual([...lines].sort());

    const subset = await strata("live", "export", "t", "--features", "v,i");
    const first = JSON.parse(subset.stdout.split("\n")[0]!) as Record<string, unknown>;
    expect(Object.keys(first)).toEqual(["id", "event_time_ms", "v", "i"]);

    expect((await strata("live", "export", "t", "--features", "nope")).code).toBe(2);
    expect((await strata("live", "export", "t", "--shard", "3/3")).code).toBe(2);
    expect((await strata("live", "export", "t", "--version", "9")).code).toBe(4);
  });

  it("leaves a damaged record out, says so, and exits 5", async () => {
    const store = new TableStore(join(dir, "copy"), "t");
    const { manifest } = store.readManifest(store.requireCurrentVersion());
    const fd = openSync(store.segmentPath(manifest.segments[0]!.uuid), "r+");
    writeSync(fd, Buffer.from([0xff]), 0, 1, 4096 + 100); // inside the first records
    closeSync(fd);
    const out = join(dir, "damaged.jsonl");
    const exported = await strata("copy", "export", "t", "--out", out);
    expect(exported.code).toBe(5);
    expect(exported.stderr).toMatch(/1 record of v1 failed its CRC check and was left out; "strata verify t/);
    expect(readFileSync(out, "utf8").split("\n").filter(Boolean).length).toBe(rowsOf("live").size - 1);
  });
});
