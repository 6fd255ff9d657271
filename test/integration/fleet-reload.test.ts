// A table added to the config of a running fleet (SIGHUP on every node, docs/operations.md): the
// writer takes its lease, a version imported on the writer's host reaches the replica, and the
// tables served before go on being replicated.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FleetHarness, servedVersion, until, type NodeProcess } from "../helpers/fleet-processes.js";
import { redisUrl } from "../helpers/services.js";

describe("fleet config reload (writer + replica, real Redis)", () => {
  let h: FleetHarness;
  let writer: NodeProcess;
  let replica: NodeProcess;
  beforeAll(async () => {
    h = new FleetHarness(redisUrl());
    [writer, replica] = await Promise.all([
      h.startNode("writer", "writer"),
      h.startNode("replica", "replica"),
    ]);
    const coord = await h.connect();
    await until("the writer lease", async () => (await coord.getLease("users"))?.node === "writer");
    await coord.close();
  });
  afterAll(() => h?.close());

  it("replicates a table added by SIGHUP, and the tables before it", async () => {
    const config = JSON.parse(readFileSync(h.configPath, "utf8")) as { tables: object[] };
    const items = { name: "items", key: "item_id", features: [{ name: "title", type: "string" }] };
    writeFileSync(h.configPath, JSON.stringify({ tables: [...config.tables, items] }));
    writer.proc.kill("SIGHUP");
    replica.proc.kill("SIGHUP");
    const coord = await h.connect();
    try {
      await until("the items lease", async () => (await coord.getLease("items"))?.node === "writer");
      await until("the users lease again", async () => (await coord.getLease("users"))?.node === "writer");
    } finally {
      await coord.close();
    }

    const file = join(h.root, "items.csv");
    writeFileSync(file, "item_id,title\ni1,first\ni2,second\n");
    const r = await h.cli(["--data-dir", writer.dataDir, "import", "items", file, "--no-progress"]);
    expect(r.code, r.stderr).toBe(0);
    await until("items on the replica", async () => {
      const res = await replica.client.getFeatures({ table: "items", keys: ["i2"] }).catch(() => null);
      return res?.rows[0]?.status === "ROW_STATUS_FOUND";
    });
    const res = await replica.client.getFeatures({ table: "items", keys: ["i1", "i2", "i3"] });
    expect(res.version).toBe(1);
    expect(res.rows.map((row) => row.values[0] ?? null)).toEqual(["first", "second", null]);

    const version = await h.importRows(writer, [["u1", 41, "Oslo"]]);
    await until(`users v${version} on the replica`, async () => (await servedVersion(replica)) === version);
    expect(replica.proc.exitCode).toBeNull();
    expect(writer.proc.exitCode).toBeNull();
  });
});
