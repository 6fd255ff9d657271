/**
 * Where `strata import` reads a CSV or JSONL file from (docs/import.md): a gzip-compressed file,
 * known by its first bytes whatever its name, and standard input (`-`, with --format), plain or
 * compressed; each gives the rows of the plain file.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { gzipSync } from "node:zlib";
import { CLI, runStrata, type CommandResult } from "../helpers/cli.js";

const SAMPLE_CSV = resolve("sample/users.csv");

describe("strata import from compressed files and standard input", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "strata-input-"));
    writeFileSync(join(dir, "tables.json"), readFileSync(resolve("sample/strata.tables.json")));
    const csv = readFileSync(SAMPLE_CSV);
    writeFileSync(join(dir, "users.csv.gz"), gzipSync(csv));
    writeFileSync(join(dir, "misnamed.csv"), gzipSync(csv)); // compressed, named as plain
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** The CLI with `input` on its standard input. */
  const piped = (data: string, input: Buffer, ...args: string[]) =>
    new Promise<CommandResult>((done) => {
      const p = spawn(
        "node",
        [CLI, "--data-dir", join(dir, data), "--config", join(dir, "tables.json"), ...args],
        { stdio: ["pipe", "pipe", "pipe"] },
      );
      let stdout = "";
      let stderr = "";
      p.stdout.on("data", (d: Buffer) => (stdout += d));
      p.stderr.on("data", (d: Buffer) => (stderr += d));
      p.on("close", (code) => done({ code, stdout, stderr }));
      p.stdin.end(input);
    });

  /** The rows of `data`'s current version, without event times (each import's own). */
  const rowsOf = async (data: string) => {
    const out = join(dir, `${data}.jsonl`);
    const r = await runStrata(dir, data, ["export", "users", "--out", out]);
    expect(r.code, r.stderr).toBe(0);
    return readFileSync(out, "utf8")
      .trim()
      .split("\n")
      .map((l) => l.replace(/"event_time_ms":\d+,/, ""))
      .sort();
  };

  it("gives the plain file's rows from a .gz file, a compressed file named .csv, and stdin", async () => {
    const imported = async (data: string, result: Promise<CommandResult>) => {
      const r = await result;
      expect(r.code, r.stderr).toBe(0);
      return rowsOf(data);
    };
    const plain = await imported("plain", runStrata(dir, "plain", ["import", "users", SAMPLE_CSV]));
    expect(plain.length).toBe(1000);
    expect(
      await imported("gz", runStrata(dir, "gz", ["import", "users", join(dir, "users.csv.gz")])),
    ).toEqual(plain);
    expect(
      await imported("misnamed", runStrata(dir, "misnamed", ["import", "users", join(dir, "misnamed.csv")])),
    ).toEqual(plain);
    const csv = readFileSync(SAMPLE_CSV);
    expect(await imported("stdin", piped("stdin", csv, "import", "users", "-", "--format", "csv"))).toEqual(
      plain,
    );
    expect(
      await imported("stdin-gz", piped("stdin-gz", gzipSync(csv), "import", "users", "-", "--format", "csv")),
    ).toEqual(plain);
    // JSON lines too: what export wrote, compressed, back through stdin.
    const jsonl = gzipSync(readFileSync(join(dir, "plain.jsonl")));
    expect(
      await imported("jsonl", piped("jsonl", jsonl, "import", "users", "-", "--format", "jsonl")),
    ).toEqual(plain);
  });

  it("refuses a cut-off gzip file, publishing nothing", async () => {
    const cut = join(dir, "cut.csv.gz");
    writeFileSync(cut, gzipSync(readFileSync(SAMPLE_CSV)).subarray(0, 20_000));
    const r = await runStrata(dir, "cut", ["import", "users", cut]);
    expect(r.code).toBe(7);
    expect(r.stderr).toContain(`Cannot decompress ${cut}: unexpected end of file (damaged or cut-off gzip)`);
    expect(
      JSON.parse((await runStrata(dir, "cut", ["--json", "versions", "users"])).stdout).versions,
    ).toEqual([]);
  });

  it("needs --format for standard input, and a file for Parquet (exit 2)", async () => {
    const r = await piped("none", Buffer.from("user_id\nu1\n"), "import", "users", "-");
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      "Cannot tell the format of standard input: give --format csv or --format jsonl",
    );
    const p = await piped("none", Buffer.alloc(0), "import", "users", "-", "--format", "parquet");
    expect(p.code).toBe(2);
    expect(p.stderr).toContain("Parquet is read from a file");
  });
});
