/**
 * Changing a table's features in the config (docs/operations.md, "Changing a table's features"):
 * versions written before are served through the new config by feature name (an added feature is
 * null, a dropped one is not served), PACKED rows are refused until `strata compact` rewrites the
 * version in the config's schema, and a feature whose type changed refuses the version.
 */
import { afterEach, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseTablesConfig } from "../../src/config/tables-config.js";
import { VersionWriter } from "../../src/storage/version-writer.js";
import {
  inBatches,
  startHarness,
  until,
  usersSchemaJson,
  userRow,
  type Harness,
} from "../helpers/served-table.js";
import { CLI, runCommand } from "../helpers/cli.js";

const before = parseTablesConfig({ tables: [usersSchemaJson] }).tables[0]!;
/** `ltv` dropped, `score` added, the rest in another order. */
const after = {
  ...usersSchemaJson,
  features: [
    { name: "score", type: "float64" },
    ...usersSchemaJson.features.filter((f) => f.name !== "ltv").reverse(),
  ],
};
const retyped = {
  ...usersSchemaJson,
  features: usersSchemaJson.features.map((f) => (f.name === "age" ? { ...f, type: "float64" } : f)),
};
const ROWS = Array.from({ length: 50 }, (_, i) => userRow(i));

describe("a table whose features changed in the config", () => {
  let h: Harness | null = null;
  afterEach(async () => {
    await h?.close();
    h = null;
  });

  /** A server with `tables` over a version written with the schema before the change. */
  const serveOldVersion = (tables: object[]) =>
    startHarness({
      tables,
      beforeStart: ({ store }) => new VersionWriter(store, before).importRows(inBatches(ROWS)).then(() => {}),
    });

  it("serves the old version by name: added features null, dropped ones gone; PACKED only after compact", async () => {
    h = await serveOldVersion([after]);
    const res = await h.client.getFeatures({ table: "users", keys: ["user:4", "nobody"] });
    expect(res.version).toBe(1);
    expect(res.features).toEqual(["score", "blob", "emb", "ctr", "premium", "country", "age"]);
    expect(res.rows[0]!.status).toBe("ROW_STATUS_FOUND");
    expect(res.rows[0]!.values).toEqual([
      null,
      Buffer.from([4, 1, 2]),
      [4, 1, -4, Math.fround(0.1)],
      0.5,
      true,
      "c4",
      "1",
    ]);
    expect(res.rows[1]!.status).toBe("ROW_STATUS_NOT_FOUND");
    const subset = await h.client.getFeatures({
      table: "users",
      keys: ["user:4"],
      features: ["age", "score"],
    });
    expect(subset.rows[0]!.values).toEqual(["1", null]);
    await expect(
      h.client.getFeatures({ table: "users", keys: ["user:4"], features: ["ltv"] }),
    ).rejects.toMatchObject({ code: 3, details: expect.stringMatching(/no feature "ltv"/) });
    const scanned = [];
    for await (const chunk of h.client.scanTable("users")) scanned.push(...chunk);
    expect(scanned).toHaveLength(ROWS.length);
    expect(scanned.every((r) => r.values[0] === null && r.values.length === 7)).toBe(true);

    await expect(
      h.client.getFeatures({ table: "users", keys: ["user:4"], encoding: "ENCODING_PACKED" }),
    ).rejects.toMatchObject({
      code: 9, // FAILED_PRECONDITION
      details: expect.stringMatching(/another schema .*added score; dropped ltv.*strata compact users/),
    });

    // What `strata compact users` does with the new config; the server swaps to it.
    new VersionWriter(h.store, h.schema).compact();
    await until(
      async () => (await h!.client.getFeatures({ table: "users", keys: ["user:4"] })).version === 2,
    );
    const migrated = await h.client.getFeatures({ table: "users", keys: ["user:4"] });
    expect(migrated.rows[0]!.values).toEqual(res.rows[0]!.values);
    const packed = await h.client.getFeatures({
      table: "users",
      keys: ["user:4"],
      encoding: "ENCODING_PACKED",
    });
    expect(packed.rows[0]!.status).toBe("ROW_STATUS_FOUND");
    // v1 stays readable by number, through the new config.
    const old = await h.client.getFeatures({ table: "users", keys: ["user:4"], version: 1 });
    expect(old.rows[0]!.values).toEqual(res.rows[0]!.values);
  });

  it("refuses a version whose feature changed type, saying which", async () => {
    h = await serveOldVersion([retyped]);
    await expect(h.client.getFeatures({ table: "users", keys: ["user:4"] })).rejects.toMatchObject({
      code: 14,
      details: expect.stringMatching(
        /refused: v1; v1: .*another type than the config's \(age: int64 → float64\)/,
      ),
    });
  });

  it("strata get --local and compact read and rewrite through the config; a retyped feature exits 6", async () => {
    const dir = mkdtempSync(join(tmpdir(), "strata-schema-"));
    try {
      const config = (name: string, table: object) => {
        writeFileSync(join(dir, name), JSON.stringify({ tables: [table] }));
        return ["--data-dir", join(dir, "data"), "--config", join(dir, name)];
      };
      const [a, b, c] = [
        config("a.json", usersSchemaJson),
        config("b.json", after),
        config("c.json", retyped),
      ];
      const csv = join(dir, "users.csv");
      writeFileSync(
        csv,
        'user_id,age,country,premium,ltv,ctr,emb,blob\nu1,7,DE,true,2.5,0.25,"[1,2,3,4]",\n',
      );
      expect((await runCommand("node", [CLI, ...a, "import", "users", csv])).code).toBe(0);
      const get = async (args: string[]) => {
        const r = await runCommand("node", [CLI, ...args, "get", "users", "u1", "--local", "--json"]);
        return { code: r.code, stderr: r.stderr, row: r.code === 0 ? JSON.parse(r.stdout).rows[0] : null };
      };
      expect((await get(b)).row.features).toEqual({
        score: null,
        blob: null,
        emb: [1, 2, 3, 4],
        ctr: 0.25,
        premium: true,
        country: "DE",
        age: 7,
      });
      const tables = await runCommand("node", [CLI, ...b, "tables"]);
      expect(tables.stdout).toContain(
        "schema differs from the config (added score; dropped ltv): strata compact users",
      );
      expect((await runCommand("node", [CLI, ...b, "versions", "users"])).stdout).toContain(
        "schema: config added score; dropped ltv",
      );
      const refused = await get(c);
      expect(refused.code).toBe(6);
      expect(refused.stderr).toContain("age: int64 → float64");

      const compacted = await runCommand("node", [CLI, ...b, "compact", "users"]);
      expect(compacted.code).toBe(0);
      expect(compacted.stdout).toContain("in the config's schema (added score; dropped ltv)");
      const again = await runCommand("node", [CLI, ...b, "compact", "users"]);
      expect(again.stdout).toContain("nothing to compact");
      // The old config reads the rewritten version too: ltv was dropped from it.
      expect((await get(a)).row.features).toMatchObject({ age: 7, ltv: null, country: "DE" });
      expect((await get(b)).row.features).toMatchObject({ age: 7, score: null, country: "DE" });

      // Rolling back to v1: refused under a config that retypes one of its features, done (with
      // a word on the schema) under one that only added and dropped some.
      const retypedBack = await runCommand("node", [CLI, ...c, "rollback", "users", "--to", "1"]);
      expect(retypedBack.code).toBe(6);
      expect(retypedBack.stderr).toContain("age: int64 → float64");
      const back = await runCommand("node", [CLI, ...b, "rollback", "users", "--to", "1"]);
      expect(back.code).toBe(0);
      expect(back.stdout).toContain(
        "v1 was written with another schema than the config's (added score; dropped ltv)",
      );
      expect((await get(b)).row.features).toMatchObject({ age: 7, score: null });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
