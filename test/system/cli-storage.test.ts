import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile, spawn } from "node:child_process";
import { promisify } from "node:util";
import {
  closeSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { TableStore } from "../../src/storage/table-store.js";
import { VersionWriter, type RowChange } from "../../src/storage/version-writer.js";
import { parseTablesConfig } from "../../src/config/tables-config.js";
import { until } from "../helpers/served-table.js";
import { CLI, runCommand, type CommandResult } from "../helpers/cli.js";

const run = promisify(execFile);

const tablesJson = {
  tables: [
    {
      name: "t",
      key: "id",
      features: [
        { name: "f32", type: "float32" },
        { name: "f64", type: "float64" },
        { name: "i64", type: "int64" },
        { name: "b", type: "bool" },
        { name: "s", type: "string" },
        { name: "v", type: "float32[3]" },
      ],
    },
  ],
};

describe("strata CLI over a data dir", () => {
  let dir: string;
  let strata: (...args: string[]) => Promise<CommandResult>;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "strata-cli-"));
    writeFileSync(join(dir, "tables.json"), JSON.stringify(tablesJson));
    strata = (...args) =>
      runCommand("node", [
        CLI,
        "--data-dir",
        join(dir, "data"),
        "--config",
        join(dir, "tables.json"),
        ...args,
      ]);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("imports a 1 M-row CSV and `get --local` returns every value exactly (floats as float32)", async () => {
    const N = 1_000_000;
    const csv = join(dir, "big.csv");
    const fd = openSync(csv, "w");
    writeSync(fd, "id,f32,f64,i64,b,s,v\n");
    const expected = (i: number) => ({
      f32: ((i * 7919) % 100003) / 1000.123,
      f64: i / 3,
      i64: i % 5 === 0 ? "9007199254740993" : String(i * 1000 - 500_000_000),
      b: i % 2 === 0,
      s: i % 9 === 0 ? 'quote "and", comma' : `s${i}`,
      v: [i / 7, -i, 0.1],
    });
    let chunk = "";
    for (let i = 0; i < N; i++) {
      const e = expected(i);
      const s = e.s.includes(",") ? `"${e.s.replaceAll('"', '""')}"` : e.s;
      chunk += `k${i},${e.f32},${e.f64},${e.i64},${e.b},${s},"[${e.v.join(",")}]"\n`;
      if (chunk.length > 1 << 20) {
        writeSync(fd, chunk);
        chunk = "";
      }
    }
    writeSync(fd, chunk);
    closeSync(fd);
    const imported = await strata("import", "t", csv, "--json");
    expect(imported.stderr).toBe("");
    expect(JSON.parse(imported.stdout)).toMatchObject({ table: "t", version: 1, records: N });
    writeFileSync(
      join(dir, "keys.txt"),
      Array.from({ length: N }, (_, i) => `k${i}`).join("\n") + "\nmissing\n",
    );
    const got = await strata("get", "t", "--local", "--keys-from", join(dir, "keys.txt"), "--json");
    expect(got.code).toBe(0);
    const lines = got.stdout.trimEnd().split("\n");
    expect(lines).toHaveLength(N + 1);
    for (let i = 0; i < N; i++) {
      const row = JSON.parse(lines[i]!) as { key: string; status: string; features: Record<string, unknown> };
      const e = expected(i);
      const f = row.features;
      const ok =
        row.key === `k${i}` &&
        row.status === "FOUND" &&
        Math.fround(f.f32 as number) === Math.fround(e.f32) &&
        f.f64 === e.f64 &&
        String(f.i64) === e.i64 &&
        f.b === e.b &&
        f.s === e.s &&
        (f.v as number[]).every((x, j) => Math.fround(x) === Math.fround(e.v[j]!));
      if (!ok) expect({ i, row }).toEqual({ i, expected: e });
    }
    expect(JSON.parse(lines[N]!)).toMatchObject({ key: "missing", status: "NOT_FOUND" });
  }, 300_000);

  it("refuses an import with a bad row, naming line, column and reason, unless --skip-bad-rows", async () => {
    const csv = join(dir, "bad.csv");
    writeFileSync(
      csv,
      'id,f32,f64,i64,b,s,v\nk1,1,2,3,true,x,"[1,2,3]"\nk2,1,2,abc,true,y,"[1,2,3]"\nk3,1,2,3,true,z,"[1,2]"\n',
    );
    const store = new TableStore(join(dir, "data"), "t");
    const before = store.currentVersion();
    const refused = await strata("import", "t", csv);
    expect(refused.code).toBe(7);
    expect(refused.stderr).toMatch(/line 3, column 4 \("i64"\)/);
    expect(store.currentVersion()).toBe(before);
    // A dry run reads and types the same, reports the same, and publishes nothing.
    const dry = await strata("import", "t", csv, "--dry-run");
    expect(dry.code).toBe(7);
    expect(dry.stderr).toMatch(/line 3, column 4 \("i64"\)/);
    const dryRejects = join(dir, "dry-rejects.jsonl");
    const drySkipped = await strata("import", "t", csv, "--dry-run", "--skip-bad-rows", dryRejects, "--json");
    expect(drySkipped.code).toBe(0);
    expect(JSON.parse(drySkipped.stdout)).toMatchObject({ dry_run: true, rows: 1, rejected_rows: 2 });
    expect(readFileSync(dryRejects, "utf8").trim().split("\n")).toHaveLength(2);
    expect(store.currentVersion()).toBe(before);
    const rejects = join(dir, "rejects.jsonl");
    const skipped = await strata("import", "t", csv, "--skip-bad-rows", rejects, "--json");
    expect(skipped.code).toBe(0);
    expect(JSON.parse(skipped.stdout)).toMatchObject({ records: 1, rejected_rows: 2 });
    const lines = readFileSync(rejects, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { line: number; reason: string });
    expect(lines.map((l) => l.line)).toEqual([3, 4]);
    expect(lines[1]!.reason).toMatch(/float32\[3\]|3 numbers|length/);
    // Back to the 1 M-row version for the tests that follow.
    await strata("rollback", "t", "--to", String(before));
    await strata("resume", "t");
  });

  it("verify catches a flipped byte in header, index, data, trailer and manifest, naming the file", async () => {
    const store = new TableStore(join(dir, "data"), "t");
    const seg = store.segmentPath(store.readManifest(1).manifest.segments[0]!.uuid);
    const size = statSync(seg).size;
    const header = readFileSync(seg, { encoding: null }).subarray(0, 4096);
    const indexOffset = header.readUInt32LE(148);
    for (const [where, at] of [
      ["header", 60],
      ["data", 4096 + 1000],
      ["index", indexOffset + 16 * 5 + 3],
      ["trailer", size - 10],
    ] as const) {
      flip(seg, at);
      const r = await strata("verify", "t", "--json");
      expect(r.code, where).toBe(5);
      expect(JSON.parse(r.stdout).problems[0].file, where).toBe(seg);
      flip(seg, at);
    }
    expect((await strata("verify", "t")).code).toBe(0);
    const manifest = store.manifestPath(1);
    const original = readFileSync(manifest);
    writeFileSync(manifest, original.toString().replace('"reason": "import"', '"reason": "imprt"'));
    const r = await strata("verify", "t", "--all");
    expect(r.code).toBe(5);
    expect(r.stdout).toContain(manifest);
    writeFileSync(manifest, original);
  });

  it("a reader process sees only whole versions through 100 publishes and rollbacks", async () => {
    const root = mkdtempSync(join(tmpdir(), "strata-reader-"));
    const schema = parseTablesConfig({
      tables: [
        {
          name: "r",
          key: "id",
          features: [
            { name: "age", type: "int64" },
            { name: "x", type: "float32[16]" },
          ],
        },
      ],
    }).tables[0]!;
    const store = new TableStore(root, "r");
    const writer = new VersionWriter(store, schema);
    // Version with k segments stores age = k for every key: a reader can check each row against its snapshot.
    const rows = (age: number): RowChange[] =>
      Array.from({ length: 200 }, (_, i) => ({
        key: `k${i}`,
        eventTimeMs: 1,
        values: [BigInt(age), new Float32Array(16)],
      }));
    await writer.importRows(
      (async function* () {
        yield rows(1);
      })(),
    );
    const stop = join(root, "stop");
    const reader = spawn("node", [resolve("test/fixtures/lookup-loop.mjs"), root, "r", stop, "200"], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    reader.stdout.on("data", (d: Buffer) => (out += d));
    const exited = new Promise((r) => reader.on("exit", r));
    await new Promise((r) => setTimeout(r, 300));
    for (let op = 0; op < 100; op++) {
      const current = store.requireCurrentVersion();
      const segments = store.readManifest(current).manifest.segments.length;
      if (op % 3 === 2 && current > 1) {
        store.rollback({ verify: () => {} });
        store.resume();
      } else {
        writer.publishDelta(rows(segments + 1), null, current);
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    writeFileSync(stop, "");
    await exited;
    const stats = JSON.parse(out) as {
      snapshots: number;
      lookups: number;
      errors: string[];
      versions: number;
    };
    expect(stats.errors).toEqual([]);
    expect(stats.versions).toBeGreaterThan(10);
    rmSync(root, { recursive: true, force: true });
  });

  it("kill -9 at random points of an import always leaves a whole version current, and the next start cleans up", async () => {
    const csv = join(dir, "mid.csv");
    writeFileSync(
      csv,
      "id,f32,f64,i64,b,s,v\n" +
        Array.from({ length: 150_000 }, (_, i) => `k${i},1.5,2.5,${i},true,x${i},"[1,2,3]"`).join("\n"),
    );
    const store = new TableStore(join(dir, "data"), "t");
    // The kills land anywhere in an import as long as this machine takes for a whole one (a fixed
    // window of 100-1000 ms let a fast machine finish all of them).
    const t0 = performance.now();
    expect((await strata("import", "t", csv, "--json")).code).toBe(0);
    const wholeImportMs = performance.now() - t0;
    const before = store.requireCurrentVersion();
    const kills = Number(process.env.STRATA_KILL_RUNS ?? 20);
    let completed = 0;
    for (let k = 0; k < kills; k++) {
      const child = spawn(
        "node",
        [
          CLI,
          "--data-dir",
          join(dir, "data"),
          "--config",
          join(dir, "tables.json"),
          "import",
          "t",
          csv,
          "--no-progress",
        ],
        { stdio: "ignore" },
      );
      const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
      await new Promise((r) => setTimeout(r, (0.1 + Math.random() * 0.8) * wholeImportMs));
      child.kill("SIGKILL");
      if ((await exited) === 0) completed++;
      const current = store.requireCurrentVersion();
      expect(current === before || store.readManifest(current).manifest.reason === "import").toBe(true);
      const verified = await strata("verify", "t");
      expect(verified.code, verified.stdout + verified.stderr).toBe(0);
      const got = await strata("get", "t", "k1", "--json");
      expect(JSON.parse(got.stdout).rows[0].status).toBe("FOUND");
    }
    expect(completed).toBeLessThan(kills); // most runs were cut short
    const finished = await strata("import", "t", csv, "--json");
    expect(finished.code).toBe(0);
    const leftovers = [
      ...readdirSync(store.dataDir),
      ...readdirSync(store.versionsDir),
      ...readdirSync(store.dir),
    ].filter((n) => n.startsWith(".tmp-"));
    expect(leftovers).toEqual([]);
    await strata("gc", "t", "--keep", "1");
    const manifest = store.readManifest(store.requireCurrentVersion()).manifest;
    expect(readdirSync(store.dataDir).sort()).toEqual(manifest.segments.map((s) => `${s.uuid}.seg`).sort());
  }, 300_000);

  it("rolls back across 50 retained versions by moving one symlink; versions shows the marks", async () => {
    const root = join(dir, "fifty");
    const schema = parseTablesConfig(tablesJson).tables[0]!;
    const store = new TableStore(root, "t");
    const writer = new VersionWriter(store, schema);
    const row = (i: number): RowChange => ({
      key: "a",
      eventTimeMs: i,
      values: [1, 2, BigInt(i), true, "s", new Float32Array(3)],
    });
    await writer.importRows(
      (async function* () {
        yield [row(1)];
      })(),
    );
    for (let v = 2; v <= 50; v++) writer.publishDelta([row(v)], null, v - 1);
    const snapshotOf = (d: string) =>
      readdirSync(d)
        .map((n) => `${n}:${statSync(join(d, n)).mtimeMs}`)
        .sort();
    const dataBefore = snapshotOf(store.dataDir);
    const versionsBefore = snapshotOf(store.versionsDir);
    const cli = (...a: string[]) =>
      run("node", [CLI, "--data-dir", root, "--config", join(dir, "tables.json"), ...a]);
    const started = performance.now();
    await cli("rollback", "t", "--to", "10");
    expect(performance.now() - started).toBeLessThan(5000);
    expect(store.currentVersion()).toBe(10);
    expect(snapshotOf(store.dataDir)).toEqual(dataBefore);
    expect(snapshotOf(store.versionsDir)).toEqual(versionsBefore);
    const listed = (await cli("versions", "t")).stdout;
    expect(listed).toMatch(/\* v10\t.*PINNED/);
    expect(listed).toMatch(/ v50\t.*ROLLED-BACK/);
    expect(listed).not.toMatch(/ v9\t.*ROLLED-BACK/);
    const json = JSON.parse((await cli("versions", "t", "--json")).stdout);
    expect(json.versions.filter((v: { rolled_back: boolean }) => v.rolled_back)).toHaveLength(40);
    const got = JSON.parse((await cli("get", "t", "a", "--json")).stdout);
    expect(got.rows[0].features.i64).toBe(10);
  });

  it("compacts a version with deltas into a new base, and leaves one without deltas as it is", async () => {
    const root = join(dir, "compact");
    const store = new TableStore(root, "t");
    const writer = new VersionWriter(store, parseTablesConfig(tablesJson).tables[0]!);
    const row = (i: number): RowChange => ({
      key: `k${i}`,
      eventTimeMs: i,
      values: [1, 2, BigInt(i), true, "s", null],
    });
    await writer.importRows(
      (async function* () {
        yield [row(1), row(2)];
      })(),
    );
    const cli = (...a: string[]) =>
      runCommand("node", [CLI, "--data-dir", root, "--config", join(dir, "tables.json"), ...a]);
    const noop = await cli("compact", "t", "--json");
    expect(noop.code).toBe(0);
    expect(JSON.parse(noop.stdout)).toMatchObject({ version: 1, compacted: false });
    expect(store.listVersions()).toEqual([1]);
    writer.publishDelta([row(3)], null, 1);
    const compacted = await cli("compact", "t", "--json");
    expect(JSON.parse(compacted.stdout)).toMatchObject({ version: 3, reason: "compact", compacted: true });
    expect(store.readManifest(3).manifest.segments.map((s) => s.kind)).toEqual(["base"]);
    expect((await cli("gc", "t", "--keep", "abc")).stderr).toBe(
      'strata: --keep must be a positive integer (got "abc")\n',
    );
  });
});

function flip(path: string, at: number): void {
  const fd = openSync(path, "r+");
  const b = Buffer.alloc(1);
  readSync(fd, b, 0, 1, at);
  b[0]! ^= 0x01;
  writeSync(fd, b, 0, 1, at);
  closeSync(fd);
}

void until;
