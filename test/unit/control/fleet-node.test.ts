// The fleet protocol in one process: a writer and replicas, each a real StrataServer on loopback
// with its own data dir, sharing a MemoryCoordinationStore (the Redis version of these runs as
// separate processes in test/integration/fleet-*.test.ts).
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../../src/config/config.js";
import { parseTablesConfig } from "../../../src/config/tables-config.js";
import { StrataServer } from "../../../src/serve/strata-server.js";
import { TableStore } from "../../../src/storage/table-store.js";
import { VersionWriter, type RowChange } from "../../../src/storage/version-writer.js";
import { MemoryCoordinationStore } from "../../../src/control/memory-coordination-store.js";
import { joinFleet, type FleetNode } from "../../../src/control/join-fleet.js";
import { planResume, planRollback } from "../../../src/control/fleet-state.js";

const tables = parseTablesConfig({
  tables: [{ name: "users", key: "user_id", features: [{ name: "age", type: "int64" }] }],
});
const schema = tables.tables[0]!;

async function* once(rows: RowChange[]): AsyncGenerator<RowChange[]> {
  yield rows;
}
const rows = (n: number, age: number): RowChange[] =>
  Array.from({ length: n }, (_, i) => ({ key: `u${i}`, eventTimeMs: 1, values: [BigInt(age + i)] }));

interface TestNode {
  name: string;
  server: StrataServer;
  fleet: FleetNode;
  store: TableStore;
  stop(): Promise<void>;
}

async function until(what: string, check: () => boolean, timeoutMs = 5000): Promise<number> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > timeoutMs) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now() - started;
}

describe("joinFleet() with an in-memory control plane", () => {
  let root: string;
  let coord: MemoryCoordinationStore;
  const nodes: TestNode[] = [];

  async function startNode(name: string, role: "writer" | "replica"): Promise<TestNode> {
    const dataDir = join(root, name);
    const config = loadConfig(
      { dataDir, port: 0, metricsPort: "off" },
      {
        STRATA_FLEET_ROLE: role,
        STRATA_NODE_ID: name,
        STRATA_LEASE_TTL_MS: "600",
        STRATA_HEARTBEAT_INTERVAL_MS: "100",
        STRATA_NODE_TTL_MS: "1000",
      },
    );
    const server = new StrataServer({ config, tables, backstopIntervalMs: 100 });
    await server.start();
    const fleet = (await joinFleet({ config, tables, server, store: coord, reconcileIntervalMs: 200 }))!;
    const node: TestNode = {
      name,
      server,
      fleet,
      store: new TableStore(dataDir, "users"),
      stop: async () => {
        await fleet.stop();
        await server.stop(100);
        nodes.splice(nodes.indexOf(node), 1);
      },
    };
    nodes.push(node);
    return node;
  }

  const serving = (n: TestNode): number => n.server.tables.get("users")!.servingVersion;
  const segmentHashes = (n: TestNode, v: number): string[] =>
    n.store.readManifest(v).manifest.segments.map((s) =>
      createHash("sha256")
        .update(readFileSync(n.store.segmentPath(s.uuid)))
        .digest("hex"),
    );

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), "strata-fleet-"));
    coord = new MemoryCoordinationStore();
  });
  afterEach(async () => {
    for (const n of [...nodes]) await n.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it("replicas fetch, verify and serve what the writer publishes, byte for byte, under the same number", async () => {
    const w = await startNode("w", "writer");
    const r1 = await startNode("r1", "replica");
    const r2 = await startNode("r2", "replica");
    await until("the writer lease", () => w.fleet.status().tables.users?.writer === true);
    const writer = new VersionWriter(w.store, schema);
    await writer.importRows(once(rows(500, 0)));
    writer.publishDelta(rows(3, 1000), null, 1);
    const took = await until("both replicas on v2", () => serving(r1) === 2 && serving(r2) === 2);
    expect(took).toBeLessThan(2000);
    for (const r of [r1, r2]) {
      expect(readFileSync(r.store.manifestPath(2))).toEqual(readFileSync(w.store.manifestPath(2)));
      expect(segmentHashes(r, 2)).toEqual(segmentHashes(w, 2));
      expect(r.server.tables.get("users")!.snapshot!.get("u1").values).toEqual([1001n]);
    }
    expect((await coord.listAnnounced("users")).slice(-1)).toEqual([2]);
    expect(await coord.getDesired("users")).toMatchObject({ mode: "follow", by: "w" });
  });

  it("a fleet rollback reaches every node, survives a replica restart, and resume follows new publishes", async () => {
    const w = await startNode("w", "writer");
    const r1 = await startNode("r1", "replica");
    await until("the writer lease", () => w.fleet.status().tables.users?.writer === true);
    const writer = new VersionWriter(w.store, schema);
    await writer.importRows(once(rows(10, 0)));
    await writer.importRows(once(rows(10, 100)));
    await writer.importRows(once(rows(10, 200)));
    await until("r1 on v3", () => serving(r1) === 3);

    const plan = planRollback("users", await coord.getDesired("users"), await coord.listAnnounced("users"), {
      by: "test",
    });
    expect(plan).toMatchObject({ from: 3, to: 2 });
    await coord.setDesired("users", plan.desired);
    await until("every node on v2", () => serving(w) === 2 && serving(r1) === 2);
    expect(w.store.readState()).toMatchObject({ pinned: true, pinned_version: 2, rolled_back: [3] });
    // The writer's table is pinned: an import is refused, as on one host.
    await expect(writer.importRows(once(rows(1, 0)))).rejects.toThrow(/pinned/);

    await r1.stop();
    const r1again = await startNode("r1", "replica");
    expect(serving(r1again)).toBe(2);
    const fresh = await startNode("r3", "replica");
    await until("a fresh replica on the rolled-back version", () => serving(fresh) === 2);

    await coord.setDesired("users", planResume(await coord.getDesired("users"), "version", "test"));
    await until("the writer unpinned", () => !w.store.readState().pinned);
    expect(serving(fresh)).toBe(2); // v3 stays rolled back
    const m = await writer.importRows(once(rows(10, 300)));
    expect(m.version).toBe(4);
    await until("every node on v4", () => [w, r1again, fresh].every((n) => serving(n) === 4));
  });

  it("a standby takes the lease when the writer stops, and catches up from the replicas", async () => {
    const w1 = await startNode("w1", "writer");
    await until("w1 lease", () => w1.fleet.status().tables.users?.writer === true);
    const w2 = await startNode("w2", "writer");
    const r = await startNode("r", "replica");
    await new VersionWriter(w1.store, schema).importRows(once(rows(10, 0)));
    await until("standby and replica on v1", () => serving(w2) === 1 && serving(r) === 1);
    expect(w2.fleet.status().tables.users?.writer).toBe(false);
    await w1.stop();
    await until("w2 lease", () => w2.fleet.status().tables.users?.writer === true, 3000);
    const m = await new VersionWriter(w2.store, schema).importRows(once(rows(10, 50)));
    expect(m.version).toBe(2);
    await until("the replica on w2's v2", () => serving(r) === 2);
    expect((await coord.getAnnouncement("users", 2))?.node).toBe("w2");
  });

  it("a new writer abandons versions no live node holds, and numbers its own above them", async () => {
    // A writer that is gone announced v1..v3 from an address where nobody answers.
    const ghost = new TableStore(join(root, "ghost"), "users");
    const ghostWriter = new VersionWriter(ghost, schema);
    const epoch = (await coord.acquireLease(
      "users",
      { holder: "g/1", node: "ghost", address: "127.0.0.1:1" },
      1,
      0,
    ))!;
    for (let v = 1; v <= 3; v++) {
      await ghostWriter.importRows(once(rows(5, v)));
      const loaded = ghost.readManifest(v);
      await coord.announceVersion({
        table: "users",
        version: v,
        manifest: readFileSync(loaded.path, "utf8"),
        sha256: loaded.sha256,
        segments: [],
        node: "ghost",
        address: "127.0.0.1:1",
        epoch,
        announced_at_ms: 0,
      });
    }
    await coord.setDesired("users", {
      mode: "follow",
      version: null,
      rolled_back: [],
      resume_from: "version",
      by: "t",
    });
    await new Promise((r) => setTimeout(r, 10)); // the ghost's lease lapses
    const w = await startNode("w", "writer");
    const r = await startNode("r", "replica");
    await until(
      "the writer gave the unreachable versions up",
      () => w.store.readState().rolled_back.join() === "1,2,3",
      5000,
    );
    expect((await coord.getDesired("users"))!.rolled_back).toEqual([1, 2, 3]);
    const m = await new VersionWriter(w.store, schema).importRows(once(rows(5, 40)));
    expect(m.version).toBe(4);
    await until("the replica on the new writer's v4", () => serving(r) === 4);
  });

  it("keeps serving while the control plane is away, and rebuilds it after it comes back empty", async () => {
    const w = await startNode("w", "writer");
    const r = await startNode("r", "replica");
    await until("the writer lease", () => w.fleet.status().tables.users?.writer === true);
    const writer = new VersionWriter(w.store, schema);
    await writer.importRows(once(rows(10, 0)));
    await until("r on v1", () => serving(r) === 1);

    coord.setConnected(false);
    await writer.importRows(once(rows(10, 10))); // published while Redis is away
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(serving(r)).toBe(1);
    expect(r.server.tables.get("users")!.snapshot!.get("u1").values).toEqual([1n]);

    coord.wipe();
    coord.setConnected(true);
    await until("r on v2 after the reconnection", () => serving(r) === 2, 5000);
    expect(await coord.listAnnounced("users")).toEqual([1, 2]);
    expect(await coord.getDesired("users")).toMatchObject({ mode: "follow" });
    expect((await coord.listNodes()).map((n) => n.node).sort()).toEqual(["r", "w"]);
  });
});
