import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeDirs } from "../../../src/storage/durable-fs.js";

describe("makeDirs", () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), "strata-dirs-"))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("creates every missing directory, and again changes nothing", () => {
    makeDirs(join(dir, "a", "b", "c"));
    expect(statSync(join(dir, "a", "b", "c")).isDirectory()).toBe(true);
    makeDirs(join(dir, "a", "b", "c"));
    makeDirs(join(dir, "a"));
  });

  it("throws naming a file in the way", () => {
    writeFileSync(join(dir, "f"), "");
    expect(() => makeDirs(join(dir, "f"))).toThrow(expect.objectContaining({ code: "EEXIST" }));
    expect(() => makeDirs(join(dir, "f", "x"))).toThrow(expect.objectContaining({ code: "ENOTDIR" }));
  });

  // Node's recursive mkdir spins for ever here (mkdir answers ENOENT under an existing /proc).
  it("throws at once where the filesystem refuses a directory", () => {
    expect(() => makeDirs("/proc/strata-nope/x")).toThrow(expect.objectContaining({ code: "ENOENT" }));
  });
});
