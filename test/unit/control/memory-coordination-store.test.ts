import { describe, expect, it } from "vitest";
import { MemoryCoordinationStore } from "../../../src/control/memory-coordination-store.js";
import { UnavailableError } from "../../../src/shared/errors.js";
import { coordinationStoreSuite } from "../../helpers/coordination-suite.js";

coordinationStoreSuite("MemoryCoordinationStore", async () => {
  const store = new MemoryCoordinationStore();
  return { store, close: () => store.close() };
});

describe("MemoryCoordinationStore", () => {
  it("fails every call with UnavailableError while disconnected, and reports the transitions", async () => {
    const store = new MemoryCoordinationStore();
    const seen: string[] = [];
    store.onConnection((s) => seen.push(s));
    store.setConnected(false);
    await expect(store.listNodes()).rejects.toBeInstanceOf(UnavailableError);
    store.setConnected(true);
    expect(await store.listNodes()).toEqual([]);
    expect(seen).toEqual(["down", "up"]);
  });

  it("wipe() loses everything, like a Redis restarted without persistence", async () => {
    const store = new MemoryCoordinationStore();
    await store.acquireLease("users", { holder: "h", node: "n", address: "a:1" }, 5000, 0);
    store.wipe();
    expect(await store.getLease("users")).toBeNull();
    expect(await store.acquireLease("users", { holder: "h", node: "n", address: "a:1" }, 5000, 6)).toBe(7);
  });
});
