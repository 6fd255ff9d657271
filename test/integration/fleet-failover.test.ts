// Done means (issue 6): the standby takes the writer lease within the TTL when the writer dies
// (kill -9) or stalls (SIGSTOP), and a publish by the old writer after it lost the lease is
// refused: never announced, never served, replaced by the fleet's version on its own node.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  FleetHarness,
  servedVersion,
  until,
  versionHashes,
  type NodeProcess,
} from "../helpers/fleet-processes.js";
import { redisUrl } from "../helpers/services.js";
import type { RedisCoordinationStore } from "../../src/control/redis-coordination-store.js";

const TTL_MS = 2000;
/** A standby tries every tenth of the TTL: takeover is at most TTL + that after the last renewal. */
const TAKEOVER_BOUND_MS = TTL_MS + TTL_MS / 10 + 300;

describe("fleet writer failover (two writers + a replica, real Redis)", () => {
  let h: FleetHarness;
  let a: NodeProcess;
  let b: NodeProcess;
  let r: NodeProcess;
  let coord: RedisCoordinationStore;
  const holder = async (): Promise<{ node: string; epoch: number } | null> => coord.getLease("users");

  beforeAll(async () => {
    h = new FleetHarness(redisUrl(), { STRATA_LEASE_TTL_MS: String(TTL_MS) });
    coord = await h.connect();
    a = await h.startNode("writer-a", "writer");
    await until("a holds the lease", async () => (await holder())?.node === "writer-a");
    [b, r] = await Promise.all([h.startNode("writer-b", "writer"), h.startNode("replica", "replica")]);
    expect(await h.importRows(a, [["u1", 1, "from-a"]])).toBe(1);
    await until("everyone on v1", async () =>
      (await Promise.all([a, b, r].map((n) => servedVersion(n)))).every((v) => v === 1),
    );
  });
  afterAll(async () => {
    await coord?.close();
    await h?.close();
  });

  it("a stalled writer loses the lease to the standby within the TTL; its late publish is refused", async () => {
    const before = (await holder())!;
    expect(before).toMatchObject({ node: "writer-a", epoch: 1 });
    a.proc.kill("SIGSTOP");
    const stoppedAt = Date.now();
    try {
      await until("b takes the lease", async () => (await holder())?.node === "writer-b", 10_000);
      expect(Date.now() - stoppedAt).toBeLessThan(TAKEOVER_BOUND_MS);
      expect((await holder())!.epoch).toBe(2);
      // The new writer publishes; the replica follows it.
      expect(await h.importRows(b, [["u1", 2, "from-b"]])).toBe(2);
      await until("the replica on b's v2", async () => (await servedVersion(r)) === 2, 5000);
      // The old writer's host publishes too, while it is deposed: a v2 of its own (an import).
      expect(await h.importRows(a, [["u1", 666, "stale-a"]])).toBe(2);
      // Its epoch is fenced at the registry: nothing it announces is recorded.
      const stale = await coord.getAnnouncement("users", 2);
      expect(
        await coord.announceVersion({
          ...stale!,
          node: "writer-a",
          sha256: "0".repeat(64),
          epoch: before.epoch,
        }),
      ).toBe(false);
    } finally {
      a.proc.kill("SIGCONT");
    }
    // Awake again, it finds its lease past its deadline: it never announces its v2, and as a
    // follower it replaces it with the fleet's v2.
    await until(
      "a serves b's v2",
      async () => {
        const res = await a.client.getFeatures({ table: "users", keys: ["u1"] }).catch(() => null);
        return res?.version === 2 && res.rows[0]!.values[1] === "from-b";
      },
      8000,
    );
    const announced = (await coord.getAnnouncement("users", 2))!;
    expect(announced.node).toBe("writer-b");
    expect(versionHashes(a, 2)).toEqual(versionHashes(b, 2));
    expect(versionHashes(r, 2)).toEqual(versionHashes(b, 2));
    const res = await r.client.getFeatures({ table: "users", keys: ["u1"] });
    expect(res.rows[0]!.values).toEqual(["2", "from-b"]);
    expect((await holder())!.node).toBe("writer-b");
    expect(a.log()).toMatch(/Discarding a version the fleet does not know/);
  });

  it("kill -9 of the writer: the standby takes the lease within the TTL and publishes on", async () => {
    await until("a is a standby again", async () => (await servedVersion(a)) === 2);
    await b.kill();
    const killedAt = Date.now();
    await until("a takes the lease", async () => (await holder())?.node === "writer-a", 10_000);
    const tookMs = Date.now() - killedAt;
    expect(tookMs).toBeLessThan(TAKEOVER_BOUND_MS);
    expect((await holder())!.epoch).toBe(3);
    expect(await h.importRows(a, [["u1", 3, "from-a-again"]])).toBe(3);
    await until("the replica on v3", async () => (await servedVersion(r)) === 3, 5000);
    expect(versionHashes(r, 3)).toEqual(versionHashes(a, 3));
    const status = JSON.parse((await h.cli(["fleet", "status", "--json"])).stdout) as {
      tables: { lease: { node: string; epoch: number } }[];
      nodes: { node: string }[];
    };
    expect(status.tables[0]!.lease).toMatchObject({ node: "writer-a", epoch: 3 });
    await until("the dead writer leaves the registry", async () =>
      (await coord.listNodes()).every((n) => n.node !== "writer-b"),
    );
  });
});
