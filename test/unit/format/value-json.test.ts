import { describe, expect, it } from "vitest";
import { float32ToJson } from "../../../src/format/value-json.js";
import { prng } from "../../helpers/prng.js";

/** The definition: the fewest significant digits (1 to 9) that read back to the same float32. */
function shortestByDefinition(x: number): number | string {
  if (!Number.isFinite(x)) return String(x);
  for (let p = 1; p <= 9; p++) {
    const s = Number(x.toPrecision(p));
    if (Math.fround(s) === x) return s;
  }
  throw new Error(`no precision reads back to ${x}`);
}

describe("float32ToJson", () => {
  it("gives the shortest decimal that reads back to the same float32, for any bits", () => {
    const next = prng(5);
    const bits = new Uint32Array(1);
    const f = new Float32Array(bits.buffer);
    for (let i = 0; i < 50_000; i++) {
      bits[0] = Math.floor(next() * 2 ** 32);
      const x = f[0]!;
      expect(float32ToJson(x), `bits ${bits[0]!.toString(16)}`).toEqual(shortestByDefinition(x));
      if (Number.isFinite(x)) expect(Math.fround(Number(float32ToJson(x)))).toBe(x);
    }
  });

  it("prints integers as themselves, -0 as 0, and NaN and infinities as strings", () => {
    expect(
      [0.1, 1 / 3, 123456, -1, 16777216, 16777217, 3.4e38, 1e-45].map((v) => float32ToJson(Math.fround(v))),
    ).toEqual([0.1, 0.33333334, 123456, -1, 16777216, 16777216, 3.4e38, 1e-45]);
    expect(Object.is(float32ToJson(-0), 0)).toBe(true);
    expect([NaN, Infinity, -Infinity].map(float32ToJson)).toEqual(["NaN", "Infinity", "-Infinity"]);
  });
});
