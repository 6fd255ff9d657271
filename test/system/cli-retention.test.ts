/**
 * Retention applies after every publish, not only ingest's: `strata import` and `strata compact`
 * keep the newest STRATA_KEEP_VERSIONS versions (with the current and pinned ones) and delete the
 * segment files no retained version lists.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CLI, runCommand } from "../helpers/cli.js";

describe("retention after import and compact", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "strata-retention-"));
    const table = { name: "t", key: "id", features: [{ name: "n", type: "int64" }] };
    writeFileSync(join(dir, "tables.json"), JSON.stringify({ tables: [table] }));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const strata = (...args: string[]) =>
    runCommand(
      "node",
      [CLI, "--data-dir", join(dir, "data"), "--config", join(dir, "tables.json"), ...args],
      {
        env: { ...process.env, STRATA_KEEP_VERSIONS: "2" },
      },
    );
  const listing = (sub: string) => readdirSync(join(dir, "data", "t", sub)).sort();

  it("keeps the newest STRATA_KEEP_VERSIONS versions and only their segment files", async () => {
    for (let i = 1; i <= 4; i++) {
      const csv = join(dir, `v${i}.csv`);
      writeFileSync(csv, `id,n\na,${i}\n`);
      const r = await strata("import", "t", csv, "--json");
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout).deleted_versions).toEqual(i <= 2 ? [] : [i - 2]);
    }
    expect(listing("versions")).toEqual(["v00000003", "v00000004"]);
    expect(listing("data").filter((n) => n.endsWith(".seg"))).toHaveLength(2);
    // After a rollback (current v3) and resume, the next import makes v5 current: v3 goes by age.
    expect((await strata("rollback", "t")).code).toBe(0);
    expect((await strata("resume", "t")).code).toBe(0);
    const csv = join(dir, "v5.csv");
    writeFileSync(csv, "id,n\na,5\n");
    const fifth = await strata("import", "t", csv);
    expect(fifth.stdout).toContain("as v5");
    expect(fifth.stdout).toContain("retention deleted v3");
    expect(listing("versions")).toEqual(["v00000004", "v00000005"]);
    const got = JSON.parse((await strata("get", "t", "a", "--json")).stdout);
    expect(got.rows[0].features.n).toBe(5);
  });
});
