// Done means (issue 6): Redis stopped and restarted during reads: zero failed reads. The fleet
// runs on a Redis of its own (scripts/services.sh with a private state dir and port), so stopping
// it does not disturb the shared one. That Redis keeps nothing across a restart (--save ''), so
// this also covers the control plane coming back empty: the writer re-seeds and re-announces.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { FleetHarness, servedVersion, until, type NodeProcess } from "../helpers/fleet-processes.js";
import { freePort } from "../helpers/free-port.js";

const SCRIPT = resolve("scripts/services.sh");

describe("fleet through a Redis outage (writer + 2 replicas, private Redis)", () => {
  let stateDir: string;
  let port: number;
  let h: FleetHarness;
  let writer: NodeProcess;
  let replicas: NodeProcess[];

  const services = (...args: string[]): Promise<string> =>
    new Promise((resolveRun, reject) =>
      execFile(
        "bash",
        [SCRIPT, ...args],
        {
          env: { ...process.env, STRATA_SERVICES_DIR: stateDir, STRATA_REDIS_PORT: String(port) },
          timeout: 60_000,
        },
        (err, stdout, stderr) =>
          err ? reject(new Error(`services.sh ${args.join(" ")}: ${stderr}`)) : resolveRun(stdout),
      ),
    );

  beforeAll(async () => {
    stateDir = mkdtempSync(join(tmpdir(), "strata-redis-"));
    port = await freePort();
    const up = await services("up", "redis");
    const url = /^REDIS_URL=(\S+)$/m.exec(up)![1]!;
    h = new FleetHarness(url);
    [writer, ...replicas] = await Promise.all([
      h.startNode("writer", "writer"),
      h.startNode("replica-1", "replica"),
      h.startNode("replica-2", "replica"),
    ]);
    const coord = await h.connect();
    await until("the writer lease", async () => (await coord.getLease("users"))?.node === "writer");
    await coord.close();
    const rows = Array.from({ length: 100 }, (_, i) => [`u${i}`, i, "one"] as [string, number, string]);
    expect(await h.importRows(writer, rows)).toBe(1);
    await until("every node on v1", async () =>
      (await Promise.all([writer, ...replicas].map((n) => servedVersion(n)))).every((v) => v === 1),
    );
  });
  afterAll(async () => {
    await h?.close();
    await services("down", "redis").catch(() => undefined);
    rmSync(stateDir, { recursive: true, force: true });
  });

  it("serves every read while Redis is down and after it comes back; then the fleet catches up", async () => {
    let reads = 0;
    const failures: string[] = [];
    let reading = true;
    const reader = async (node: NodeProcess): Promise<void> => {
      for (let i = 0; reading; i++) {
        const key = `u${i % 100}`;
        try {
          const res = await node.client.getFeatures({ table: "users", keys: [key] });
          if (res.rows[0]!.status !== "ROW_STATUS_FOUND")
            failures.push(`${node.name} ${key}: ${res.rows[0]!.status}`);
          reads++;
        } catch (err) {
          failures.push(`${node.name} ${key}: ${(err as Error).message}`);
        }
      }
    };
    const readers = [writer, ...replicas].map((n) => reader(n));
    try {
      await new Promise((r) => setTimeout(r, 300));
      await services("down", "redis");
      await new Promise((r) => setTimeout(r, 500));
      // Fleet commands fail at once with a clear error (exit 8)...
      const status = await h.cli(["fleet", "status"]);
      expect(status.code).toBe(8);
      expect(status.stderr).toMatch(
        /Cannot reach Redis at redis:\/\/127\.0\.0\.1:\d+: .*\(check STRATA_REDIS_URL\)/,
      );
      // ...while the writer's host publishes on its own: it serves it; the replicas cannot learn it yet.
      // (An import is a new base: it carries every row.)
      const rows = Array.from(
        { length: 100 },
        (_, i) => [`u${i}`, 1000 + i, "two"] as [string, number, string],
      );
      expect(await h.importRows(writer, rows)).toBe(2);
      await until("the writer serves v2", async () => (await servedVersion(writer)) === 2, 5000);
      await new Promise((r) => setTimeout(r, 2500)); // beyond the lease TTL: the writer's lease lapses
      for (const r of replicas) expect(await servedVersion(r)).toBe(1);

      await services("up", "redis"); // same port, nothing kept
      const took = await until(
        "the replicas on v2 after Redis came back",
        async () => (await Promise.all(replicas.map((r) => servedVersion(r)))).every((v) => v === 2),
        15_000,
      );
      expect(took).toBeLessThan(10_000);
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      reading = false;
      await Promise.all(readers);
    }
    expect(failures).toEqual([]);
    expect(reads).toBeGreaterThan(500);

    // The control plane was rebuilt: desired state seeded, versions re-announced, a new lease
    // epoch above the one before the outage (the writer kept it on disk).
    const coord = await h.connect();
    try {
      expect(await coord.listAnnounced("users")).toEqual([1, 2]);
      expect(await coord.getDesired("users")).toMatchObject({ mode: "follow", by: "writer" });
      const lease = (await coord.getLease("users"))!;
      expect(lease.node).toBe("writer");
      expect(lease.epoch).toBeGreaterThan(1);
      await until("every node registered again", async () => (await coord.listNodes()).length === 3);
    } finally {
      await coord.close();
    }
  });
});
