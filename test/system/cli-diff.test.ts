/**
 * `strata diff` through the CLI (docs/cli.md): the current version against its parent by default,
 * counts and keys in text and JSON; a version without a parent needs --from.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { TableStore } from "../../src/storage/table-store.js";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { runStrata } from "../helpers/cli.js";

describe("strata diff", () => {
  let dir: string;
  const strata = (...args: string[]) => runStrata(dir, "data", args);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "strata-diff-cli-"));
    writeFileSync(join(dir, "tables.json"), readFileSync(resolve("sample/strata.tables.json")));
    const lines = readFileSync(resolve("sample/users.csv"), "utf8").trim().split("\n");
    // v2: user:1 to user:9 gone, user:10's age changed, user:2000 new; the rest the same.
    const edited = lines
      .filter((l) => !/^user:[1-9],/.test(l))
      .map((l) => (l.startsWith("user:10,") ? l.replace(/^user:10,\d+,/, "user:10,99,") : l));
    edited.push('user:2000,30,FR,true,1.5,0.5,"[0,0,0,0,0,0,0,0]"');
    writeFileSync(join(dir, "v2.csv"), edited.join("\n") + "\n");
    for (const file of [resolve("sample/users.csv"), join(dir, "v2.csv")]) {
      const r = await strata("import", "users", file);
      expect(r.code, r.stderr).toBe(0);
    }
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("counts what the last import changed, and names keys", async () => {
    const r = await strata("diff", "users", "--keys", "3");
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines[0]).toBe("users: v1 → v2: 1 added, 9 removed, 1 changed, 990 unchanged");
    expect(lines).toContain("  added: user:2000");
    expect(lines).toContain("  changed: user:10");
    expect(lines.find((l) => l.startsWith("  removed: "))).toMatch(/^ {2}removed: (user:\d ){3}…$/);
    const json = JSON.parse((await strata("--json", "diff", "users", "--from", "2", "--to", "1")).stdout);
    expect(json).toMatchObject({
      from: 2,
      to: 1,
      added: 9,
      removed: 1,
      changed: 1,
      unchanged: 990,
      damaged: 0,
    });
    expect(json.samples.removed).toEqual(["user:2000"]);
  });

  it("needs --from for a version without a parent", async () => {
    const r = await strata("diff", "users", "--to", "1");
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('v1 of "users" has no parent: give --from');
  });

  it("leaves a damaged record out, counts it, and exits 5", async () => {
    const store = new TableStore(join(dir, "data"), "users");
    const { manifest } = store.readManifest(2);
    const fd = openSync(store.segmentPath(manifest.segments[0]!.uuid), "r+");
    writeSync(fd, Buffer.from([0xff]), 0, 1, 4096 + 100); // inside the first records
    closeSync(fd);
    const r = await strata("--json", "diff", "users");
    expect(r.code).toBe(5);
    expect(JSON.parse(r.stdout)).toMatchObject({ damaged: 2 }); // the record, seen from each side
    expect(r.stderr).toContain(
      'failed the CRC check and were left out; "strata verify users" names the file',
    );
  });
});
