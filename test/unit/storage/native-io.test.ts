/** The native addon's mapping and off-thread CRC (storage/native.ts). */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { crc32OffThread, mapSegmentFile } from "../../../src/storage/native.js";

const dir = mkdtempSync(join(tmpdir(), "strata-native-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("native addon", () => {
  const bytes = Buffer.alloc(3 * 4096 + 123);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 2654435761) >>> 24;
  const path = join(dir, "seg");
  writeFileSync(path, bytes);

  it("maps a file read-only: the same bytes, page aligned; missing files fail like fs does", () => {
    const mapped = mapSegmentFile(path);
    expect(mapped.equals(readFileSync(path))).toBe(true);
    expect(mapped.byteOffset % 4096).toBe(0);
    writeFileSync(join(dir, "empty"), "");
    expect(mapSegmentFile(join(dir, "empty"))).toHaveLength(0);
    expect(() => mapSegmentFile(join(dir, "missing"))).toThrow(expect.objectContaining({ code: "ENOENT" }));
  });

  it("computes zlib's CRC-32 off the event loop, of mapped and ordinary buffers", async () => {
    const mapped = mapSegmentFile(path);
    expect(await crc32OffThread(mapped)).toBe(crc32(bytes));
    expect(await crc32OffThread(mapped.subarray(4096, 9000))).toBe(crc32(bytes.subarray(4096, 9000)));
    expect(await crc32OffThread(Buffer.from("hello"))).toBe(crc32("hello"));
    expect(await crc32OffThread(Buffer.alloc(0))).toBe(0);
  });
});
