/**
 * `strata import` of Parquet files (docs/import.md#parquet), through the CLI: a file DuckDB wrote
 * becomes a version that `get` returns exactly; a bad row stops the import naming its row and
 * column, or goes to the rejects file with `--skip-bad-rows`; `--dry-run` publishes nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parquetWriteBuffer } from "hyparquet-writer";
import { CLI, runCommand, runStrata } from "../helpers/cli.js";

const FIXTURE = resolve("test/fixtures/parquet/all-types-snappy.parquet");

describe("strata import <table> <file.parquet>", () => {
  let dir: string;
  const strata = (...args: string[]) => runStrata(dir, "data", args);

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "strata-parquet-cli-"));
    copyFileSync(resolve("test/fixtures/parquet/tables.json"), join(dir, "tables.json"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("imports every row, and get returns the values DuckDB wrote", async () => {
    const dry = await strata("--json", "import", "users", FIXTURE, "--dry-run");
    expect(dry.code, dry.stderr).toBe(0);
    expect(JSON.parse(dry.stdout)).toMatchObject({ dry_run: true, rows: 5, rejected_rows: 0 });
    expect(JSON.parse((await strata("--json", "versions", "users")).stdout).versions).toEqual([]);

    const r = await strata("--json", "import", "users", FIXTURE);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ version: 1, records: 5 });
    const got = JSON.parse((await strata("--json", "get", "users", "user:1", "user:3", "user:5")).stdout);
    expect(got.rows.map((row: { features: unknown }) => row.features)).toEqual([
      {
        age: 45,
        country: "DE",
        is_premium: false,
        ltv: 14.9,
        ctr: 0.02186,
        emb: [0.25, -0.5, 1],
        blob: "QUFFQw==",
      },
      {
        age: "-9223372036854775808",
        country: 'naïve, "quoted"\nline',
        is_premium: null,
        ltv: 1e300,
        ctr: null,
        emb: null,
        blob: "AP8=",
      },
      { age: 7, country: null, is_premium: false, ltv: "NaN", ctr: "Infinity", emb: [0, 0, 0], blob: null },
    ]);
    expect(got.rows[0].event_time_ms).toBe(1732000000000);
  });

  it("gives the bundled sample the same rows from users.parquet as from users.csv", async () => {
    const sample = (data: string, ...args: string[]) =>
      runCommand("node", [
        CLI,
        "--data-dir",
        join(dir, data),
        "--config",
        resolve("sample/strata.tables.json"),
        ...args,
      ]);
    const rowsOf = async (file: string) => {
      const data = `sample-${file}`;
      const r = await sample(data, "import", "users", resolve("sample", file));
      expect(r.code, r.stderr).toBe(0);
      const out = join(dir, `${file}.jsonl`);
      expect((await sample(data, "export", "users", "--out", out)).code).toBe(0);
      return readFileSync(out, "utf8")
        .trim()
        .split("\n")
        .map((line) => {
          const { event_time_ms: _time, ...row } = JSON.parse(line) as Record<string, unknown>;
          return row;
        })
        .sort((a, b) => String(a["user_id"]).localeCompare(String(b["user_id"])));
    };
    const fromCsv = await rowsOf("users.csv");
    expect(fromCsv.length).toBe(1000);
    expect(await rowsOf("users.parquet")).toEqual(fromCsv);
  });

  it("stops at a bad row naming it, or writes it to the rejects file and imports the rest", async () => {
    const file = join(dir, "bad.parquet");
    const buffer = parquetWriteBuffer({
      columnData: [
        { name: "user_id", data: ["a", "b", "c"], type: "STRING" },
        { name: "age", data: [1, 2.5, 3], type: "DOUBLE" },
      ],
    });
    writeFileSync(file, new Uint8Array(buffer));
    const refused = await strata("import", "users", file);
    expect(refused.code).toBe(7);
    expect(refused.stderr).toContain('row 2, column "age": 2.5 is not an int64');

    const rejects = join(dir, "rejects.jsonl");
    const r = await strata("--json", "import", "users", file, "--skip-bad-rows", rejects);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ records: 2, rejected_rows: 1 });
    expect(JSON.parse(readFileSync(rejects, "utf8"))).toEqual({
      row: 2,
      column: "age",
      reason: 'row 2, column "age": 2.5 is not an int64',
      raw: '{"user_id":"b","age":2.5}',
    });
  });

  it("splits a file of several row groups between two threads: the same rows, later rows win, bad rows in order", async () => {
    const n = 5000;
    const ids = Array.from({ length: n }, (_, i) => `k${i % 4000}`); // k0..k999 again in the second half
    const ages = Array.from({ length: n }, (_, i) => (i === 1234 || i === 4321 ? NaN : i));
    const file = join(dir, "split.parquet");
    const buffer = parquetWriteBuffer({
      columnData: [
        { name: "user_id", data: ids, type: "STRING" },
        { name: "age", data: ages, type: "DOUBLE" },
      ],
      rowGroupSize: 1000,
    });
    writeFileSync(file, new Uint8Array(buffer));
    const imported = async (threads: string, data: string) => {
      const rejects = join(dir, `${data}.rejects`);
      const r = await runStrata(dir, data, ["--json", "import", "users", file, "--skip-bad-rows", rejects], {
        env: { STRATA_IMPORT_THREADS: threads, STRATA_IMPORT_SPLIT_MIN_ROWS: "1" },
      });
      expect(r.code, r.stderr).toBe(0);
      const out = join(dir, `${data}.jsonl`);
      expect((await runStrata(dir, data, ["export", "users", "--out", out])).code).toBe(0);
      const parts = JSON.parse((await runStrata(dir, data, ["--json", "inspect", "users"])).stdout);
      return {
        // Event times are each import's start.
        rows: readFileSync(out, "utf8")
          .trim()
          .split("\n")
          .map((l) => l.replace(/"event_time_ms":\d+,/, ""))
          .sort(),
        rejects: readFileSync(rejects, "utf8"),
        parts,
      };
    };
    const one = await imported("1", "one-thread");
    const two = await imported("2", "two-threads");
    expect(two.rows).toEqual(one.rows);
    expect(one.rows.length).toBe(3999); // k1234's only row is bad
    // k0 was written at rows 1 and 4001: the later one (age 4000) stays.
    expect(two.rows.find((l) => l.includes('"k0"'))).toContain('"age":4000');
    expect(two.rejects).toBe(one.rejects);
    expect(
      two.rejects
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l).row),
    ).toEqual([1235, 4322]);
    // One base part per thread (the split happened).
    expect(one.parts.segments.length).toBe(1);
    expect(two.parts.segments.length).toBe(2);

    // A bad row in the worker's half stops the import as it would in one thread, and leaves nothing.
    const late = join(dir, "late.parquet");
    const lateAges = ages.map((a, i) => (i === 1234 ? 1234 : a));
    writeFileSync(
      late,
      new Uint8Array(
        parquetWriteBuffer({
          columnData: [
            { name: "user_id", data: ids, type: "STRING" },
            { name: "age", data: lateAges, type: "DOUBLE" },
          ],
          rowGroupSize: 1000,
        }),
      ),
    );
    const refused = await runStrata(dir, "late", ["import", "users", late], {
      env: { STRATA_IMPORT_SPLIT_MIN_ROWS: "1" },
    });
    expect(refused.code).toBe(7);
    expect(refused.stderr).toContain('row 4322, column "age": "NaN" is not an int64');
    expect(readdirSync(join(dir, "late", "users", "data"))).toEqual([]);
  });

  it("exports a version as Parquet that imports back to the same rows, every type and event time", async () => {
    expect((await runStrata(dir, "export-a", ["import", "users", FIXTURE])).code).toBe(0);
    const parquet = join(dir, "export.parquet");
    const r = await runStrata(dir, "export-a", ["--json", "export", "users", "--out", parquet]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ rows: 5, out: parquet });
    expect((await runStrata(dir, "export-b", ["import", "users", parquet])).code).toBe(0);
    const jsonl = async (data: string, ...args: string[]) => {
      const out = join(dir, `${data}.jsonl`);
      expect((await runStrata(dir, data, ["export", "users", "--out", out, ...args])).code).toBe(0);
      return readFileSync(out, "utf8");
    };
    const original = await jsonl("export-a");
    expect(original).toContain('"age":"-9223372036854775808"');
    expect(original).toContain('"ltv":"NaN"');
    expect(await jsonl("export-b")).toBe(original);

    // A subset of features, and the format's refusals.
    const subset = join(dir, "subset.pq");
    expect(
      (await runStrata(dir, "export-a", ["export", "users", "--features", "emb,age", "--out", subset])).code,
    ).toBe(0);
    expect((await runStrata(dir, "export-c", ["import", "users", subset])).code).toBe(0);
    const rows = (await jsonl("export-c", "--features", "age,emb,country"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(rows.find((row) => row.user_id === "user:1")).toMatchObject({
      age: 45,
      emb: [0.25, -0.5, 1],
      country: null,
    });
    const noFile = await runStrata(dir, "export-a", ["export", "users", "--format", "parquet"]);
    expect(noFile.code).toBe(2);
    expect(noFile.stderr).toContain("--format parquet needs --out FILE");
  });
});
