// What the CLI says when it is used wrongly or the table's state refuses: the exit codes of
// docs/cli.md, JSON errors under --json, and nothing written by a command that is refused.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runStrata, type CommandResult } from "../helpers/cli.js";
import { TableStore } from "../../src/storage/table-store.js";

const tables = {
  tables: [
    {
      name: "t",
      key: "id",
      features: [
        { name: "n", type: "int64" },
        { name: "s", type: "string" },
      ],
    },
  ],
};

describe("strata CLI refusals", () => {
  let dir: string;
  const strata = (...args: string[]): Promise<CommandResult> => runStrata(dir, "data", args);
  const jsonError = (r: CommandResult) =>
    JSON.parse(r.stderr.trim()) as { error: { code: string; message: string } };
  const dataFiles = () => readdirSync(join(dir, "data", "t", "data"));

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "strata-cli-usage-"));
    writeFileSync(join(dir, "tables.json"), JSON.stringify(tables));
    writeFileSync(join(dir, "rows.csv"), "id,n,s\na,1,x\nb,2,y\nc,3,z\n");
    writeFileSync(join(dir, "empty.csv"), "");
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("refuses state commands on a table with nothing published (exit 4) and lays nothing out", async () => {
    for (const args of [
      ["pin", "t"],
      ["unpin", "t"],
      ["resume", "t"],
      ["rollback", "t"],
    ]) {
      const r = await strata(...args);
      expect([args, r.code, r.stderr]).toEqual([args, 4, expect.stringMatching(/has no published version/)]);
    }
    expect((await strata("gc", "t", "--keep", "1")).code).toBe(0);
    const versions = await strata("--json", "versions", "t");
    expect([versions.code, JSON.parse(versions.stdout).versions]).toEqual([0, []]);
    expect(existsSync(join(dir, "data", "t"))).toBe(false);
  });

  it("gives --json errors as JSON, the parser's too, with the usage code (exit 2)", async () => {
    for (const args of [["bogus"], ["tables", "--bogus"], ["gc", "t"], ["gc", "t", "--keep", "0"]]) {
      const r = await strata("--json", ...args);
      expect([args, r.code]).toEqual([args, 2]);
      expect(jsonError(r).error.code).toBe("STRATA_USAGE");
    }
    expect(jsonError(await strata("--json", "gc", "t")).error.message).toMatch(/--keep/);
    // Without --json the parser's own message and usage.
    const plain = await strata("tables", "--bogus");
    expect([plain.code, plain.stderr]).toEqual([
      2,
      expect.stringMatching(/unknown option '--bogus'[\s\S]*Usage:/),
    ]);
  });

  it("publishes an empty CSV only with --allow-empty", async () => {
    const refused = await strata("import", "t", join(dir, "empty.csv"));
    expect([refused.code, refused.stderr]).toEqual([7, expect.stringMatching(/has no rows/)]);
    expect((await strata("import", "t", join(dir, "empty.csv"), "--allow-empty")).code).toBe(0);
    expect(new TableStore(join(dir, "data"), "t").currentVersion()).toBe(1);
  });

  it("refuses an import into a pinned table before writing anything, dry run included (exit 6)", async () => {
    expect((await strata("import", "t", join(dir, "rows.csv"))).code).toBe(0);
    expect((await strata("pin", "t")).code).toBe(0);
    const before = dataFiles();
    for (const extra of [[], ["--dry-run"]]) {
      const r = await strata("import", "t", join(dir, "rows.csv"), ...extra);
      expect([extra, r.code, r.stderr]).toEqual([extra, 6, expect.stringMatching(/is pinned at version 2/)]);
    }
    expect(dataFiles()).toEqual(before);
    expect((await strata("resume", "t")).code).toBe(0);
  });

  it("names a JSONL reject's field as its column", async () => {
    writeFileSync(join(dir, "bad.jsonl"), '{"id":"a","n":1}\n{"id":"b","n":"x"}\n');
    const rejects = join(dir, "rejects.jsonl");
    const r = await strata("import", "t", join(dir, "bad.jsonl"), "--dry-run", "--skip-bad-rows", rejects);
    expect(r.code).toBe(0);
    expect(JSON.parse(readFileSync(rejects, "utf8"))).toMatchObject({ line: 2, column: "n" });
  });

  it("refuses options that exclude each other, and a rollback to the current version (exit 2)", async () => {
    const cases: [string[], RegExp][] = [
      [["verify", "t", "--all", "--version", "1"], /--version or --all/],
      [["rollback", "t", "--to", "2"], /v2 is already current/],
      [["get", "t", "a", "--local", "--server", "127.0.0.1:1"], /--local or --server/],
      [["serve", "--port", "abc"], /Invalid --port "abc": expected 0 to 65535/],
      [["serve", "--metrics-port", "70000"], /Invalid --metrics-port "70000": expected 0 to 65535/],
    ];
    for (const [args, message] of cases) {
      const r = await strata(...args);
      expect([args, r.code, r.stderr]).toEqual([args, 2, expect.stringMatching(message)]);
    }
  });

  it("get: keys of 1 to 1024 bytes, a --keys-from file that cannot be read (exit 2)", async () => {
    expect((await strata("get", "t", "")).code).toBe(2);
    const long = await strata("get", "t", "k".repeat(1025));
    expect([long.code, long.stderr]).toEqual([
      2,
      expect.stringMatching(/1 to 1024 bytes of UTF-8; got one of 1025/),
    ]);
    expect((await strata("get", "t", "k".repeat(1024))).stdout).toMatch(/\tNOT_FOUND\n$/);
    const missing = await strata("get", "t", "--keys-from", join(dir, "nope.txt"));
    expect([missing.code, missing.stderr]).toEqual([
      2,
      expect.stringMatching(/--keys-from ".*nope\.txt" cannot be read/),
    ]);
  });

  it("export: --out - is standard output; an --out in a missing directory is refused (exit 2)", async () => {
    const r = await strata("export", "t", "--out", "-");
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split("\n")).toHaveLength(3);
    expect(existsSync("-")).toBe(false);
    const bad = await strata("export", "t", "--out", join(dir, "no", "such", "x.jsonl"));
    expect([bad.code, bad.stderr]).toEqual([2, expect.stringMatching(/its directory does not exist/)]);
  });

  it("get names the version of a row that failed its CRC check (exit 5)", async () => {
    const store = new TableStore(join(dir, "data"), "t");
    const { manifest } = store.readManifest(store.requireCurrentVersion());
    const fd = openSync(store.segmentPath(manifest.segments[0]!.uuid), "r+");
    writeSync(fd, Buffer.from([0xff]), 0, 1, 4096 + 100); // inside the first records
    closeSync(fd);
    const r = await strata("get", "t", "a", "b", "c");
    expect(r.code).toBe(5);
    expect(r.stdout.match(/DATA_LOSS/g)).toHaveLength(1);
    expect(r.stderr).toMatch(
      /1 row\(s\) of t v2 failed their CRC check .*"strata verify t --version 2" names/,
    );
    const json = await strata("--json", "get", "t", "a", "b", "c");
    expect([json.code, jsonError(json).error.code]).toEqual([5, "STRATA_RECORD_CORRUPT"]);
  });

  it("refuses a table state file that does not parse, naming it (exit 5)", async () => {
    writeFileSync(join(dir, "data", "t", "state.json"), "{garbage");
    for (const args of [["pin", "t"], ["tables"], ["gc", "t", "--keep", "1"]]) {
      const r = await strata(...args);
      expect([args, r.code, r.stderr]).toEqual([args, 5, expect.stringMatching(/state\.json" is corrupt/)]);
    }
  });
});
