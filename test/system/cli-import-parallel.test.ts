/**
 * `strata import` of a CSV split across two threads (importer/parallel-import.ts) gives what one
 * thread gives: the same rows (a key repeated across the halves keeps its later row), the same
 * bad-row reports in the same order with the same lines, the same first error; and a cut that
 * falls inside a quoted field is noticed (one thread then reads on).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CLI, runCommand } from "../helpers/cli.js";

const tablesJson = {
  tables: [
    {
      name: "t",
      key: "id",
      features: [
        { name: "f32", type: "float32" },
        { name: "i64", type: "int64" },
        { name: "s", type: "string" },
        { name: "v", type: "float32[2]" },
      ],
    },
  ],
};

describe("strata import in two threads", () => {
  let dir: string;
  const strata = (threads: number, data: string, ...args: string[]) =>
    runCommand("node", [CLI, "--data-dir", join(dir, data), "--config", join(dir, "tables.json"), ...args], {
      env: { ...process.env, STRATA_IMPORT_THREADS: String(threads), STRATA_IMPORT_SPLIT_MIN_BYTES: "1" },
    });
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "strata-par-"));
    writeFileSync(join(dir, "tables.json"), JSON.stringify(tablesJson));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Imports `csv` with 1 and 2 threads; returns both results and the rows of `keys` (JSON). */
  async function both(name: string, csv: string, keys: string[], ...args: string[]) {
    const path = join(dir, `${name}.csv`);
    writeFileSync(path, csv);
    const out = [];
    for (const threads of [1, 2]) {
      const data = `${name}-${threads}`;
      const rejects = join(dir, `${data}.rejects`);
      const imported = await strata(
        threads,
        data,
        "import",
        "t",
        path,
        "--no-progress",
        ...args.map((a) => (a === "REJECTS" ? rejects : a)),
      );
      const got =
        imported.code === 0 ? await strata(threads, data, "get", "t", ...keys, "--local", "--json") : null;
      out.push({
        code: imported.code,
        stderr: imported.stderr,
        // The default event time is the import's start: it differs between the two runs.
        rows:
          got === null
            ? null
            : JSON.parse(got.stdout).rows.map((r: object) => ({ ...r, event_time_ms: undefined })),
        rejects: args.includes("REJECTS") ? readFileSync(rejects, "utf8") : "",
      });
    }
    expect(out[1]).toEqual(out[0]);
    return out[0]!;
  }

  const line = (i: number, key = `k${i}`) => `${key},${i / 8},${i * 3},s${i},"[${i},0.1]"`;

  it("gives the same rows, the later row of a key repeated across the halves winning", async () => {
    const lines = Array.from({ length: 2000 }, (_, i) => line(i, i % 500 === 7 ? "dup" : `k${i}`));
    const r = await both("rows", "id,f32,i64,s,v\n" + lines.join("\n") + "\n", [
      "k0",
      "k1999",
      "k1000",
      "dup",
    ]);
    expect(r.code).toBe(0);
    expect(r.rows.map((x: { status: string }) => x.status)).toEqual(["FOUND", "FOUND", "FOUND", "FOUND"]);
    expect(JSON.stringify(r.rows[3])).toContain('"s1507"');
  });

  it("reports bad rows of both halves in order with their lines, and the first error alone", async () => {
    const lines = Array.from({ length: 2000 }, (_, i) =>
      i % 301 === 5 ? `k${i},x,1,s,"[1,2]"` : i === 1703 ? `k${i},1,1,"unclosed` : line(i),
    );
    const csv = "id,f32,i64,s,v\n" + lines.join("\n") + "\n";
    const skipped = await both("bad", csv, ["k0", "k1999"], "--skip-bad-rows", "REJECTS");
    expect(skipped.code).toBe(0);
    expect(skipped.rejects.split("\n").filter(Boolean).length).toBeGreaterThan(5);
    expect(skipped.rejects).toContain('"line":1512'); // row 1510 is past the cut
    const failed = await both("fail", csv, []);
    expect(failed.code).toBe(7);
    expect(failed.stderr).toContain("line 7, column 2");
    const late = await both("late", csv.replace(/^k5,x,.*$/m, line(5)), []);
    expect(late.stderr).toContain("line 308, column 2");
  });

  it("publishes nothing and leaves no file when no row is left, unless --allow-empty", async () => {
    const header = "id,f32,i64,s,v\n";
    const bad = Array.from({ length: 2000 }, (_, i) => `k${i},x,1,s,"[1,2]"`);
    for (const [name, csv, args, why] of [
      ["empty", header, [], /empty\.csv has no rows/],
      [
        "allbad",
        header + bad.join("\n") + "\n",
        ["--skip-bad-rows", "REJECTS"],
        /all 2000 rows of .*allbad\.csv were bad/,
      ],
    ] as const) {
      const r = await both(name, csv, [], ...args);
      expect(r.code).toBe(7);
      expect(r.stderr).toMatch(why);
      expect(r.stderr).toContain("--allow-empty");
      for (const threads of [1, 2]) {
        const data = join(dir, `${name}-${threads}`, "t");
        expect(readdirSync(join(data, "versions")), name).toEqual([]);
        expect(readdirSync(join(data, "data")), name).toEqual([]);
      }
    }
    const allowed = await both("allowed", header, ["k1"], "--allow-empty");
    expect(allowed.code).toBe(0);
    expect(allowed.rows.map((x: { status: string }) => x.status)).toEqual(["NOT_FOUND"]);
  });

  it("notices a cut inside a quoted field and reads on in one thread", async () => {
    // One huge quoted string spanning the middle of the file, its lines looking like rows.
    const fake = Array.from({ length: 3000 }, (_, i) => line(i, `fake${i}`))
      .join("\n")
      .replaceAll('"', "'");
    const csv = "id,f32,i64,s,v\n" + `a,1,1,"${fake}","[1,2]"\n` + line(1, "b") + "\n";
    const r = await both("quoted", csv, ["a", "b", "fake1500"]);
    expect(r.code).toBe(0);
    expect(r.rows.map((x: { status: string }) => x.status)).toEqual(["FOUND", "FOUND", "NOT_FOUND"]);
  });
});
