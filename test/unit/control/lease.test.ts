import { describe, expect, it } from "vitest";
import { STANDBY, heldAfter, leaseTiming, leaseValid, nextLeaseAction } from "../../../src/control/lease.js";

const t = leaseTiming(3000);

describe("leaseTiming()", () => {
  it("renews every third of the TTL, tries to acquire every tenth, keeps a drift margin", () => {
    expect(t).toEqual({ ttlMs: 3000, renewEveryMs: 1000, acquireEveryMs: 300, driftMs: 150 });
    expect(leaseTiming(300).acquireEveryMs).toBe(50);
    expect(() => leaseTiming(100)).toThrow(RangeError);
  });
});

describe("nextLeaseAction()", () => {
  it("a standby acquires at once, then at its pace after a failed attempt", () => {
    expect(nextLeaseAction(STANDBY, 1000, null, t)).toEqual({ type: "acquire" });
    expect(nextLeaseAction(STANDBY, 1100, 1000, t)).toEqual({ type: "wait", untilMs: 1300 });
    expect(nextLeaseAction(STANDBY, 1300, 1000, t)).toEqual({ type: "acquire" });
  });

  it("a holder renews a third of the TTL after the last renewal was sent", () => {
    const held = heldAfter(4, 1000, t);
    expect(held).toEqual({ kind: "held", epoch: 4, validUntilMs: 3850, renewedAtMs: 1000 });
    expect(nextLeaseAction(held, 1500, 1000, t)).toEqual({ type: "wait", untilMs: 2000 });
    expect(nextLeaseAction(held, 2000, 1000, t)).toEqual({ type: "renew", epoch: 4 });
  });

  it("retries a failed renewal at the standby pace, and expires at the local deadline", () => {
    const held = heldAfter(4, 1000, t);
    // Renewal tried at 2000 failed (Redis away): the next try is 300 ms later.
    expect(nextLeaseAction(held, 2100, 2000, t)).toEqual({ type: "wait", untilMs: 2300 });
    expect(nextLeaseAction(held, 2300, 2000, t)).toEqual({ type: "renew", epoch: 4 });
    // The last retry before the deadline waits no longer than the deadline.
    expect(nextLeaseAction(held, 3700, 3600, t)).toEqual({ type: "wait", untilMs: 3850 });
    expect(nextLeaseAction(held, 3850, 3600, t)).toEqual({ type: "expire", epoch: 4 });
  });
});

describe("leaseValid()", () => {
  it("trusts a lease strictly before its deadline, which falls before Redis can expire the key", () => {
    const sentAt = 1000;
    const held = heldAfter(1, sentAt, t);
    expect(leaseValid(held, 3849)).toBe(true);
    expect(leaseValid(held, 3850)).toBe(false);
    expect(leaseValid(STANDBY, 0)).toBe(false);
    // Redis starts the TTL when it runs the command, at or after the send: the key lives until
    // at least sentAt + ttl, so a standby cannot hold it while the holder still trusts its own.
    expect(held.kind === "held" && held.validUntilMs < sentAt + t.ttlMs).toBe(true);
  });
});
