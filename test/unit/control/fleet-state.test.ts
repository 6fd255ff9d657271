import { describe, expect, it } from "vitest";
import {
  fleetTarget,
  nodeTarget,
  planPin,
  planResume,
  planRollback,
  seedDesired,
  stragglers,
} from "../../../src/control/fleet-state.js";
import type { DesiredState, NodeStatus } from "../../../src/control/coordination-store.js";
import { MemoryCoordinationStore } from "../../../src/control/memory-coordination-store.js";
import { fleetPin } from "../../../src/control/fleet-admin.js";
import {
  NoPreviousVersionError,
  NoVersionError,
  TableNotFoundError,
  VersionNotFoundError,
  VersionRolledBackError,
} from "../../../src/storage/errors.js";

const desired = (d: Partial<DesiredState>): DesiredState => ({
  mode: "follow",
  version: null,
  rolled_back: [],
  resume_from: "version",
  generation: 1,
  updated_at_ms: 0,
  by: "t",
  ...d,
});

describe("fleetTarget()", () => {
  it("follows the newest announced version that is not rolled back, or the pinned one", () => {
    expect(fleetTarget(desired({}), [1, 2, 3])).toBe(3);
    expect(fleetTarget(desired({ rolled_back: [3, 2] }), [1, 2, 3])).toBe(1);
    expect(fleetTarget(desired({ mode: "pinned", version: 2 }), [1, 2, 3])).toBe(2);
    expect(fleetTarget(desired({}), [])).toBeNull();
    expect(fleetTarget(null, [1])).toBeNull();
  });
});

describe("nodeTarget()", () => {
  it("the writer keeps its own newer, not yet announced publish; a follower takes the fleet's", () => {
    const d = desired({ rolled_back: [4] });
    expect(nodeTarget(d, [1, 2, 3], 5, true)).toBe(5);
    expect(nodeTarget(d, [1, 2, 3], 5, false)).toBe(3);
    expect(nodeTarget(d, [1, 2, 3], 2, true)).toBe(3); // a new writer catches up
    expect(nodeTarget(d, [1, 2, 3], 4, true)).toBe(3); // never keeps a rolled-back one
    expect(nodeTarget(desired({ mode: "pinned", version: 2 }), [1, 2, 3], 5, true)).toBe(2);
    expect(nodeTarget(d, [], 1, true)).toBe(1);
  });
});

describe("planRollback()", () => {
  it("defaults to the previous announced version and marks everything above rolled back", () => {
    const p = planRollback("users", desired({}), [1, 2, 3, 4], { by: "cli" });
    expect(p).toEqual({
      from: 4,
      to: 3,
      desired: { mode: "pinned", version: 3, rolled_back: [4], resume_from: "version", by: "cli" },
    });
    // From a pin at 3, the previous is 2; 3 and 4 are rolled back.
    const again = planRollback(
      "users",
      desired({ mode: "pinned", version: 3, rolled_back: [4] }),
      [1, 2, 3, 4],
      {
        by: "cli",
      },
    );
    expect(again.to).toBe(2);
    expect(again.desired.rolled_back).toEqual([3, 4]);
    // No desired state yet: the fleet follows the newest.
    expect(planRollback("users", null, [5, 6], { by: "cli" }).to).toBe(5);
  });

  it("refuses what a local rollback refuses", () => {
    expect(() => planRollback("users", desired({}), [], { by: "c" })).toThrow(NoVersionError);
    expect(() => planRollback("users", desired({}), [3], { by: "c" })).toThrow(NoPreviousVersionError);
    expect(() => planRollback("users", desired({}), [1, 3], { to: 2, by: "c" })).toThrow(
      VersionNotFoundError,
    );
    const rb = desired({ mode: "pinned", version: 1, rolled_back: [2, 3] });
    expect(() => planRollback("users", rb, [1, 2, 3], { to: 3, by: "c" })).toThrow(VersionRolledBackError);
    // --force promotes it again and clears its mark.
    expect(planRollback("users", rb, [1, 2, 3], { to: 3, force: true, by: "c" }).desired.rolled_back).toEqual(
      [2],
    );
  });
});

describe("planPin() and planResume()", () => {
  it("pin freezes the fleet where it is; resume follows again, keeping the rolled-back marks", () => {
    expect(planPin("users", desired({ rolled_back: [3] }), [1, 2, 3], "c")).toEqual({
      version: 2,
      desired: { mode: "pinned", version: 2, rolled_back: [3], resume_from: "version", by: "c" },
    });
    expect(() => planPin("users", null, [], "c")).toThrow(NoVersionError);
    expect(planResume(desired({ mode: "pinned", version: 2, rolled_back: [3] }), "latest", "c")).toEqual({
      mode: "follow",
      version: null,
      rolled_back: [3],
      resume_from: "latest",
      by: "c",
    });
  });
});

describe("seedDesired()", () => {
  it("turns a writer's local pin into the fleet's, or follows", () => {
    expect(seedDesired({ pinned: true, pinned_version: 4, rolled_back: [5] }, 4, "w")).toMatchObject({
      mode: "pinned",
      version: 4,
      rolled_back: [5],
    });
    expect(seedDesired({ pinned: false, pinned_version: null, rolled_back: [] }, 7, "w")).toMatchObject({
      mode: "follow",
      version: null,
    });
  });
});

describe("stragglers()", () => {
  it("names live nodes holding the table that do not serve the target", () => {
    const node = (name: string, serving: number | null): NodeStatus =>
      ({
        node: name,
        tables: serving === null ? {} : { users: { serving, error: name === "b" ? "fetch failed" : null } },
      }) as unknown as NodeStatus;
    expect(stragglers([node("a", 3), node("b", 2), node("c", null)], "users", 3)).toEqual([
      { node: "b", serving: 2, error: "fetch failed" },
    ]);
  });
});

describe("fleet commands on a table the fleet does not know", () => {
  it("say so, as a table not found (exit 4), without touching the desired state", async () => {
    const store = new MemoryCoordinationStore();
    const pin = fleetPin(store, "users", 100);
    await expect(pin).rejects.toBeInstanceOf(TableNotFoundError);
    await expect(pin).rejects.toThrow(
      'Table "users" is not known to the fleet: no node has announced a version of it',
    );
    expect(await store.getDesired("users")).toBeNull();
  });
});
