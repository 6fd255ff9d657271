import { afterEach, describe, expect, it } from "vitest";
import { MemoryCoordinationStore } from "../../../src/control/memory-coordination-store.js";
import { WriterLease } from "../../../src/control/writer-lease.js";
import { LeaseLostError } from "../../../src/control/errors.js";
import { leaseTiming } from "../../../src/control/lease.js";
import { silentLogger } from "../../../src/shared/logger.js";

const until = async (check: () => boolean, timeoutMs = 3000): Promise<number> => {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > timeoutMs) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 10));
  }
  return Date.now() - started;
};

describe("WriterLease", () => {
  const leases: WriterLease[] = [];
  const make = (store: MemoryCoordinationStore, node: string, floor = 0): WriterLease => {
    const l = new WriterLease(
      store,
      "users",
      { holder: `${node}/1`, node, address: `${node}:1` },
      leaseTiming(600),
      () => floor,
      silentLogger,
    );
    leases.push(l);
    return l;
  };
  afterEach(async () => {
    for (const l of leases.splice(0)) await l.stop(false);
  });

  it("one holder at a time; a standby takes over within the TTL after the holder dies", async () => {
    const store = new MemoryCoordinationStore();
    const a = make(store, "a");
    const b = make(store, "b");
    a.start();
    await until(() => a.held);
    b.start();
    await new Promise((r) => setTimeout(r, 800)); // beyond a TTL: a keeps renewing
    expect(a.epoch).toBe(1);
    expect(b.held).toBe(false);
    expect(() => b.check()).toThrow(LeaseLostError);
    await a.stop(false); // dies: no release, the key expires by itself
    const tookMs = await until(() => b.held);
    expect(tookMs).toBeLessThan(600 + 100);
    expect(b.check()).toBe(2);
  });

  it("stops trusting its lease before its deadline passes when it cannot renew, and says why", async () => {
    const store = new MemoryCoordinationStore();
    const a = make(store, "a");
    const lost: string[] = [];
    a.on("lost", (_epoch, reason) => lost.push(reason));
    a.start();
    await until(() => a.held);
    store.setConnected(false);
    // The gate closes at the deadline itself (the clock is read on every check)...
    await until(() => !a.held, 1000);
    expect(() => a.check()).toThrow(/not renewed before its deadline/);
    // ...and the "lost" event (which stops ingest) follows when the lease timer runs.
    await until(() => lost.length > 0, 500);
    expect(lost).toEqual([expect.stringMatching(/not renewed before its deadline/)]);
    // Redis back: it takes the lease again, with a new epoch.
    store.setConnected(true);
    await until(() => a.held, 2000);
    expect(a.epoch).toBe(2);
  });

  it("takes an epoch above the floor it has seen on disk (the control plane lost its counter)", async () => {
    const store = new MemoryCoordinationStore();
    const a = make(store, "a", 9);
    a.start();
    await until(() => a.held);
    expect(a.epoch).toBe(10);
  });

  it("learns it was deposed at its next renewal", async () => {
    const store = new MemoryCoordinationStore();
    const a = make(store, "a");
    a.start();
    await until(() => a.held);
    store.wipe(); // the key is gone; someone else takes it
    await store.acquireLease("users", { holder: "x/1", node: "x", address: "x:1" }, 5000, 0);
    await until(() => !a.held, 1000);
    expect(() => a.check()).toThrow(LeaseLostError);
  });
});
