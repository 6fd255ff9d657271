/**
 * An import the machine refuses part-way (here a file size limit, `ulimit -f`, which makes a write
 * fail with EFBIG as a full disk makes it fail with ENOSPC; Node ignores SIGXFSZ) exits 10 with the
 * system's reason and the file, publishes nothing, and leaves no temp file: in one thread and in
 * two (the worker's error crosses a thread).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CLI, runCommand } from "../helpers/cli.js";

const tablesJson = {
  tables: [{ name: "t", key: "id", features: [{ name: "v", type: "float32[16]" }] }],
};

describe("strata import refused by the system", () => {
  let dir: string;
  /** Runs the CLI under a limit of `fileKiB` KiB per written file (none when null). */
  const strata = (fileKiB: number | null, threads: number, ...args: string[]) =>
    runCommand(
      "bash",
      [
        "-c",
        `${fileKiB === null ? "" : `ulimit -f ${fileKiB}; `}exec node "$@"`,
        "bash",
        CLI,
        "--data-dir",
        join(dir, "data"),
        "--config",
        join(dir, "tables.json"),
        ...args,
      ],
      { env: { ...process.env, STRATA_IMPORT_THREADS: String(threads), STRATA_IMPORT_SPLIT_MIN_BYTES: "1" } },
    );

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "strata-refused-"));
    writeFileSync(join(dir, "tables.json"), JSON.stringify(tablesJson));
    const row = (key: string, digits: number) =>
      `${key},"[${Array.from({ length: 16 }, (_, i) => (i / 8).toFixed(digits)).join(",")}]"\n`;
    writeFileSync(
      join(dir, "small.csv"),
      "id,v\n" + Array.from({ length: 10 }, (_, i) => row(`small${i}`, 1)).join(""),
    );
    // Two threads cut the file in the middle by bytes. The first half's rows are long in the CSV
    // (many digits), so its part stays under the limit below; the second half's part does not,
    // so the error is the worker's. One thread writes both halves into one part.
    writeFileSync(
      join(dir, "big.csv"),
      "id,v\n" +
        Array.from({ length: 12_000 }, (_, i) => row(`long${i}`, 20)).join("") +
        Array.from({ length: 150_000 }, (_, i) => row(`big${i}`, 0)).join(""),
    );
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each([1, 2])(
    "exits 10 naming the file, and v1 stays current with nothing left over (%i thread(s))",
    async (threads) => {
      if (threads === 1) expect((await strata(null, 1, "import", "t", join(dir, "small.csv"))).code).toBe(0);
      const refused = await strata(6144, threads, "import", "t", join(dir, "big.csv"), "--no-progress");
      expect(refused.code, refused.stderr).toBe(10);
      expect(refused.stderr).toMatch(
        new RegExp(
          `^strata: file too large \\(EFBIG\\): write '${join(dir, "data", "t", "data")}/\\.tmp-[^']+'\\n$`,
        ),
      );
      const versions = await strata(null, 1, "versions", "t", "--json");
      expect(versions.code).toBe(0);
      expect(JSON.parse(versions.stdout)).toMatchObject({ current: 1 });
      expect(readdirSync(join(dir, "data", "t", "data")).filter((f) => f.startsWith("."))).toEqual([]);
      const got = await strata(null, 1, "get", "t", "small3", "big3", "--local", "--json");
      const rows = (JSON.parse(got.stdout) as { rows: { key: string; status: string }[] }).rows;
      expect(rows.map((r) => r.status)).toEqual(["FOUND", "NOT_FOUND"]);
    },
  );
});
