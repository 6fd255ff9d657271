import { describe, expect, it } from "vitest";
import { Slab } from "../../../src/serve/slab.js";

describe("Slab", () => {
  it("carves aligned buffers from one slab and gives large ones their own memory", () => {
    const slab = new Slab();
    const a = slab.buffer(10);
    const b = slab.buffer(100);
    expect(a.buffer).toBe(b.buffer);
    expect(b.byteOffset).toBe(16);
    expect(slab.buffer(1 << 20).buffer).not.toBe(a.buffer);
  });

  it("reuses a slab only once every buffer carved from it was released", () => {
    const slab = new Slab();
    const fill = (): Buffer[] => Array.from({ length: 8 }, () => slab.buffer(128 * 1024));
    const first = fill();
    const kept = fill(); // the second slab: one of its buffers is never released
    for (const b of first) slab.release(b);
    for (const b of kept.slice(1)) slab.release(b);
    const third = fill();
    expect(third[0]!.buffer).toBe(first[0]!.buffer); // the first slab, all released, comes back
    third.forEach((b) => slab.release(b));
    const fourth = fill();
    expect(fourth[0]!.buffer).not.toBe(kept[0]!.buffer); // never the one with a live buffer
    expect(fourth[0]!.buffer).toBe(first[0]!.buffer);
  });
});
