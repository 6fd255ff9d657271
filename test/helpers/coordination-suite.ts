// One behaviour suite for every CoordinationStore: run against MemoryCoordinationStore in the unit
// project and RedisCoordinationStore (a real Redis) in the integration project, so the fake
// behaves like the real thing.
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type {
  CoordinationStore,
  FleetEvent,
  NodeStatus,
  VersionAnnouncement,
} from "../../src/control/coordination-store.js";

export interface SuiteStore {
  store: CoordinationStore;
  close(): Promise<void>;
}

const holder = (n: string) => ({ holder: `${n}/instance`, node: n, address: `${n}:50051` });

const announcement = (table: string, version: number, epoch: number): VersionAnnouncement => ({
  table,
  version,
  manifest: `{"version":${version}}`,
  sha256: "0".repeat(64),
  segments: [{ uuid: "a".repeat(32), size: 8192, body_crc32: 42 }],
  node: "w",
  address: "w:50051",
  epoch,
  announced_at_ms: 1,
});

const nodeStatus = (node: string): NodeStatus => ({
  node,
  role: "replica",
  address: `${node}:1`,
  pid: 1,
  host: "h",
  started_at_ms: 1,
  heartbeat_at_ms: 2,
  tables: {
    users: {
      serving: 3,
      current: 3,
      pinned: false,
      applied_generation: 1,
      writer: false,
      epoch: null,
      version_created_at_ms: null,
      ingest_lag: null,
      last_publish_ms: null,
      error: null,
    },
  },
});

/** `create` makes a store on a fresh fleet namespace each time. */
export function coordinationStoreSuite(name: string, create: () => Promise<SuiteStore>): void {
  describe(`${name}: CoordinationStore behaviour`, () => {
    let s: SuiteStore;
    let store: CoordinationStore;
    beforeEach(async () => {
      s = await create();
      store = s.store;
    });
    afterEach(() => s.close());

    it("acquireLease() grants one holder at a time, with growing epochs", async () => {
      expect(await store.acquireLease("users", holder("a"), 5000, 0)).toBe(1);
      expect(await store.acquireLease("users", holder("b"), 5000, 0)).toBeNull();
      expect(await store.getLease("users")).toMatchObject({ node: "a", epoch: 1, address: "a:50051" });
      expect((await store.getLease("users"))!.ttlMs).toBeGreaterThan(4000);
      await store.releaseLease("users", "a/instance", 1);
      expect(await store.getLease("users")).toBeNull();
      expect(await store.acquireLease("users", holder("b"), 5000, 0)).toBe(2);
      // Another table has its own lease and counter.
      expect(await store.acquireLease("items", holder("a"), 5000, 0)).toBe(1);
    });

    it("acquireLease() never hands out an epoch at or below the floor it is given", async () => {
      expect(await store.acquireLease("users", holder("a"), 5000, 41)).toBe(42);
      await store.releaseLease("users", "a/instance", 42);
      expect(await store.acquireLease("users", holder("b"), 5000, 3)).toBe(43);
    });

    it("renewLease() extends only the holder's own epoch; a lapsed lease goes to a standby", async () => {
      const epoch = (await store.acquireLease("users", holder("a"), 300, 0))!;
      expect(await store.renewLease("users", "b/instance", epoch, 300)).toBe(false);
      expect(await store.renewLease("users", "a/instance", epoch + 1, 300)).toBe(false);
      expect(await store.renewLease("users", "a/instance", epoch, 300)).toBe(true);
      await sleep(450);
      expect(await store.getLease("users")).toBeNull();
      expect(await store.renewLease("users", "a/instance", epoch, 300)).toBe(false);
      expect(await store.acquireLease("users", holder("b"), 300, 0)).toBe(epoch + 1);
      // The deposed holder cannot release the new holder's lease.
      await store.releaseLease("users", "a/instance", epoch);
      expect(await store.getLease("users")).toMatchObject({ node: "b" });
    });

    it("announceVersion() records only under the table's current epoch (fencing)", async () => {
      const e1 = (await store.acquireLease("users", holder("a"), 300, 0))!;
      expect(await store.announceVersion(announcement("users", 1, e1))).toBe(true);
      await sleep(450);
      const e2 = (await store.acquireLease("users", holder("b"), 5000, 0))!;
      expect(await store.announceVersion(announcement("users", 2, e1))).toBe(false);
      expect(await store.announceVersion(announcement("users", 2, e2))).toBe(true);
      expect(await store.listAnnounced("users")).toEqual([1, 2]);
      expect(await store.getAnnouncement("users", 2)).toEqual(announcement("users", 2, e2));
      expect(await store.getAnnouncement("users", 9)).toBeNull();
      await store.forgetVersions("users", [1], e1); // fenced: nothing forgotten
      expect(await store.listAnnounced("users")).toEqual([1, 2]);
      await store.forgetVersions("users", [1], e2);
      expect(await store.listAnnounced("users")).toEqual([2]);
      expect(await store.listTables()).toEqual(["users"]);
    });

    it("setDesired() numbers generations; ifAbsent only seeds", async () => {
      expect(await store.getDesired("users")).toBeNull();
      const base = {
        mode: "follow" as const,
        version: null,
        rolled_back: [],
        resume_from: "version" as const,
      };
      const d1 = await store.setDesired("users", { ...base, by: "w" }, { ifAbsent: true });
      expect(d1).toMatchObject({ mode: "follow", generation: 1, rolled_back: [] });
      expect(await store.setDesired("users", { ...base, by: "x" }, { ifAbsent: true })).toBeNull();
      const d2 = await store.setDesired("users", {
        ...base,
        mode: "pinned",
        version: 3,
        rolled_back: [4, 5],
        by: "cli",
      });
      expect(d2!.generation).toBe(2);
      expect(await store.getDesired("users")).toEqual(d2);
    });

    it("heartbeat() registers nodes that drop out after their TTL", async () => {
      await store.heartbeat(nodeStatus("n1"), 5000);
      await store.heartbeat(nodeStatus("n2"), 300);
      expect((await store.listNodes()).map((n) => n.node)).toEqual(["n1", "n2"]);
      expect((await store.listNodes())[0]).toEqual(nodeStatus("n1"));
      await sleep(450);
      expect((await store.listNodes()).map((n) => n.node)).toEqual(["n1"]);
      await store.removeNode("n1");
      expect(await store.listNodes()).toEqual([]);
    });

    it("subscribe() delivers lease, announce, desired and published events", async () => {
      const events: FleetEvent[] = [];
      const sub = await store.subscribe((e) => events.push(e));
      await sleep(100); // the subscription is in place
      const epoch = (await store.acquireLease("users", holder("a"), 5000, 0))!;
      await store.announceVersion(announcement("users", 7, epoch));
      await store.setDesired("users", {
        mode: "pinned",
        version: 7,
        rolled_back: [],
        resume_from: "version",
        by: "t",
      });
      await store.publish({ type: "node", node: "n1" });
      const deadline = Date.now() + 3000;
      while (events.length < 4 && Date.now() < deadline) await sleep(20);
      expect(events).toEqual([
        { type: "lease", table: "users", node: "a", epoch },
        { type: "announced", table: "users", version: 7 },
        { type: "desired", table: "users", generation: 1 },
        { type: "node", node: "n1" },
      ]);
      await sub.close();
    });
  });
}
