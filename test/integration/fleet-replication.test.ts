// Done means (issue 6): a writer and two replicas, separate processes with their own data dirs and
// ports on a real Redis: a version published on the writer is served by both replicas,
// byte-identical (same manifest and segment checksums), within 2 s.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  FleetHarness,
  servedVersion,
  until,
  versionHashes,
  type NodeProcess,
} from "../helpers/fleet-processes.js";
import { redisUrl } from "../helpers/services.js";

describe("fleet replication (writer + 2 replicas, real Redis)", () => {
  let h: FleetHarness;
  let writer: NodeProcess;
  let replicas: NodeProcess[];
  beforeAll(async () => {
    h = new FleetHarness(redisUrl());
    [writer, ...replicas] = await Promise.all([
      h.startNode("writer", "writer"),
      h.startNode("replica-1", "replica"),
      h.startNode("replica-2", "replica"),
    ]);
    const coord = await h.connect();
    await until("the writer lease", async () => (await coord.getLease("users"))?.node === "writer");
    await coord.close();
  });
  afterAll(() => h?.close());

  it("a version imported on the writer is served by both replicas within 2 s, byte-identical", async () => {
    for (const [round, rows] of [
      [1, 2000],
      [2, 50],
    ] as const) {
      const data = Array.from(
        { length: rows },
        (_, i) => [`u${i}`, i * round, `city${i % 13}`] as [string, number, string],
      );
      const version = await h.importRows(writer, data);
      expect(version).toBe(round);
      const took = await until(
        `both replicas on v${version}`,
        async () => (await Promise.all(replicas.map((r) => servedVersion(r)))).every((v) => v === version),
        5000,
      );
      expect(took).toBeLessThan(2000);
      const expected = versionHashes(writer, version);
      for (const r of replicas) {
        expect(versionHashes(r, version)).toEqual(expected);
        const res = await r.client.getFeatures({ table: "users", keys: ["u7", "nope"] });
        expect(res.version).toBe(version);
        expect(res.rows.map((row) => row.status)).toEqual(["ROW_STATUS_FOUND", "ROW_STATUS_NOT_FOUND"]);
        expect(res.rows[0]!.values).toEqual([String(7 * round), "city7"]);
      }
    }
  });

  it("strata fleet status lists the nodes, their versions, the writer and the target", async () => {
    await until("fresh heartbeats", async () => {
      const r = await h.cli(["fleet", "status", "--json"]);
      const s = JSON.parse(r.stdout) as { nodes: { tables: { users: { serving: number } } }[] };
      return s.nodes.length === 3 && s.nodes.every((n) => n.tables.users.serving === 2);
    });
    const r = await h.cli(["fleet", "status", "--json"]);
    expect(r.code).toBe(0);
    const status = JSON.parse(r.stdout) as {
      fleet: string;
      tables: {
        table: string;
        target: number;
        lease: { node: string; epoch: number };
        announced: number[];
      }[];
      nodes: {
        node: string;
        role: string;
        heartbeat_age_ms: number;
        tables: { users: { serving: number; writer: boolean; data_age_ms: number } };
      }[];
    };
    expect(status.fleet).toBe(h.fleetName);
    expect(status.tables).toMatchObject([
      { table: "users", target: 2, lease: { node: "writer", epoch: 1 }, announced: [1, 2] },
    ]);
    expect(status.nodes.map((n) => [n.node, n.role, n.tables.users.serving, n.tables.users.writer])).toEqual([
      ["replica-1", "replica", 2, false],
      ["replica-2", "replica", 2, false],
      ["writer", "writer", 2, true],
    ]);
    for (const n of status.nodes) {
      expect(n.heartbeat_age_ms).toBeLessThan(1500);
      expect(n.tables.users.data_age_ms).toBeGreaterThanOrEqual(0);
    }
    const text = await h.cli(["fleet", "status"]);
    expect(text.stdout).toMatch(/table users: target v2, following, writer writer \(epoch 1\), 2 announced/);
    expect(text.stdout).toMatch(/node replica-1 replica 127\.0\.0\.1:\d+ heartbeat [\d.]+s ago: users v2/);
  });
});
