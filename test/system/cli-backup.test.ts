/**
 * strata backup and restore: a version copied, verified, into a directory that is a data dir of
 * its own, and published back as a new version after retention removed it from the live table.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, openSync, readdirSync, rmSync, writeFileSync, writeSync, closeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CLI, runCommand, runStrata } from "../helpers/cli.js";
import { TableStore } from "../../src/storage/table-store.js";

describe("strata backup and restore", () => {
  let dir: string;
  const table = { name: "t", key: "id", features: [{ name: "n", type: "int64" }] };
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "strata-backup-"));
    writeFileSync(join(dir, "tables.json"), JSON.stringify({ tables: [table] }));
    const retyped = { ...table, features: [{ name: "n", type: "float64" }] };
    writeFileSync(join(dir, "retyped.json"), JSON.stringify({ tables: [retyped] }));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const strata = (dataDir: string, ...args: string[]) => runStrata(dir, dataDir, args);
  const importRows = async (n: number) => {
    const csv = join(dir, `rows${n}.csv`);
    writeFileSync(csv, "id,n\n" + Array.from({ length: 100 }, (_, i) => `k${i},${n}`).join("\n") + "\n");
    expect((await strata("live", "import", "t", csv)).code).toBe(0);
  };
  const valueOf = async (dataDir: string, key: string) =>
    JSON.parse((await strata(dataDir, "get", "t", key, "--json")).stdout).rows[0].features?.n;

  it("backs a version up into a data dir of its own, copying each segment file once", async () => {
    await importRows(1);
    const first = await strata("live", "backup", "t", join(dir, "bk"), "--json");
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ version: 1, segments: 1, copied: 1 });
    const again = await strata("live", "backup", "t", join(dir, "bk"), "--json");
    expect(JSON.parse(again.stdout)).toMatchObject({ version: 1, copied: 0 });
    expect((await strata("bk", "verify", "t")).code).toBe(0);
    expect(await valueOf("bk", "k7")).toBe(1);
  });

  it("restores it as a new version once the live table no longer has it", async () => {
    await importRows(2);
    expect((await strata("live", "gc", "t", "--keep", "1")).code).toBe(0);
    expect(await valueOf("live", "k7")).toBe(2);
    const restored = await strata("live", "restore", "t", join(dir, "bk"), "--json");
    expect(restored.code, restored.stderr).toBe(0);
    expect(JSON.parse(restored.stdout)).toMatchObject({ from: { version: 1 }, version: 3 });
    expect(await valueOf("live", "k7")).toBe(1);
    expect((await strata("live", "versions", "t")).stdout).toMatch(/\* v3\trestore\t/);
    expect((await strata("live", "verify", "t", "--all")).code).toBe(0);
  });

  it("says what is missing when there is no such backup", async () => {
    const none = await strata("live", "restore", "t", join(dir, "nothing"));
    expect(none.code).toBe(4);
    expect(none.stderr).toContain(`has no backup in ${join(dir, "nothing")}`);
    const absent = await strata("live", "restore", "t", join(dir, "bk"), "--version", "9");
    expect(absent.code).toBe(4);
    expect(absent.stderr).toContain(`Version 9 of table "t" is not in the backup at ${join(dir, "bk")}`);
  });

  it("refuses a damaged backup, naming the file, and one the config cannot read", async () => {
    const retyped = await runCommand("node", [
      CLI,
      "--data-dir",
      join(dir, "live"),
      "--config",
      join(dir, "retyped.json"),
      "restore",
      "t",
      join(dir, "bk"),
    ]);
    expect(retyped.code).toBe(6);
    expect(retyped.stderr).toContain("n: int64 → float64");
    const segment = readdirSync(join(dir, "bk", "t", "data")).find((n) => n.endsWith(".seg"))!;
    const fd = openSync(join(dir, "bk", "t", "data", segment), "r+");
    writeSync(fd, Buffer.from([0xee]), 0, 1, 4096 + 40);
    closeSync(fd);
    const damaged = await strata("live", "restore", "t", join(dir, "bk"));
    expect(damaged.code).toBe(5);
    expect(damaged.stderr).toContain(segment);
    expect(JSON.parse((await strata("live", "versions", "t", "--json")).stdout).current).toBe(3);
    // Backing up a damaged version names the damaged file and leaves nothing in the backup.
    const store = new TableStore(join(dir, "live"), "t");
    const live = `${store.readManifest(store.requireCurrentVersion()).manifest.segments[0]!.uuid}.seg`;
    const liveFd = openSync(join(dir, "live", "t", "data", live), "r+");
    writeSync(liveFd, Buffer.from([0xee]), 0, 1, 4096 + 40);
    closeSync(liveFd);
    const refusedBackup = await strata("live", "backup", "t", join(dir, "bk2"));
    expect(refusedBackup.code).toBe(5);
    expect(refusedBackup.stderr).toContain(join(dir, "live", "t", "data", live));
    expect(readdirSync(join(dir, "bk2", "t", "data"))).toEqual([]);
  });
});
