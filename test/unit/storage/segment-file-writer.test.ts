import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SegmentFileWriter } from "../../../src/storage/segment-file-writer.js";
import { encodeSegment } from "../../../src/format/segment-encoder.js";
import { rowLayout } from "../../../src/format/row-layout.js";
import { schemaHash, type TableSchema } from "../../../src/format/schema.js";

const schema: TableSchema = {
  name: "emb",
  key: "id",
  topic: "t",
  maxAgeMs: 0,
  features: [{ name: "v", type: "float32[64]" }],
};
const options = {
  kind: "base" as const,
  tableName: "emb",
  schemaHash: schemaHash(schema),
  layout: rowLayout(schema),
  segmentUuid: "0123456789abcdef0123456789abcdef",
};

describe("segment file writer", () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), "strata-"))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("writes the same bytes as the in-memory encoder, reading keys back from the file", () => {
    // ~300 B records over several of the encoder's 1 MiB chunks; every 10th key comes again near
    // the end, so the index compares keys of records already written with later ones.
    const rows = Array.from({ length: 26_000 }, (_, i) => ({
      key: i < 25_000 ? `k${i}` : `k${(i - 25_000) * 10}`,
      eventTimeMs: i,
      values: [new Float32Array(64).fill(i)],
    }));
    const writer = new SegmentFileWriter(dir, options);
    for (const r of rows) writer.add(r.key, r.eventTimeMs, r.values);
    const written = writer.finish();
    const onDisk = readFileSync(written.path);
    expect(onDisk.length).toBeGreaterThan(6 << 20);
    expect(written.header.recordCount).toBe(25_000);
    expect(onDisk.equals(encodeSegment(options, rows).bytes)).toBe(true);
  });
});
