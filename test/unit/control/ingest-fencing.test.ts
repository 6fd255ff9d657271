// The fleet's seam into ingest: a TableIngestor under a writer lease stamps the lease epoch into
// every manifest it publishes, and publishes nothing once the gate says the lease is lost.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TableStore } from "../../../src/storage/table-store.js";
import { TableIngestor, type TableIngestorOptions } from "../../../src/ingest/table-ingestor.js";
import type { DeltaBatch } from "../../../src/ingest/delta-source.js";
import { LeaseLostError } from "../../../src/control/errors.js";
import { WriterFencedError } from "../../../src/storage/errors.js";
import { silentLogger } from "../../../src/shared/logger.js";
import type { TableSchema } from "../../../src/format/schema.js";

const schema: TableSchema = {
  name: "users",
  key: "user_id",
  topic: "t.users",
  maxAgeMs: 0,
  features: [{ name: "age", type: "int64" }],
};

const base: TableIngestorOptions = {
  publishIntervalMs: 0,
  publishMaxRows: 1000,
  compactMaxDeltas: 100,
  compactDeltaRatio: 100,
  keepVersions: 100,
  limits: { maxMessageBytes: 1 << 20, maxValueBytes: 1 << 16 },
  deadLetterTopic: "t.users.dlq",
  groupId: "g",
};

const batch = (from: number, ages: number[]): DeltaBatch => ({
  topic: "t.users",
  partition: 0,
  highWatermark: BigInt(from + ages.length),
  messages: ages.map((age, i) => ({
    offset: BigInt(from + i),
    key: Buffer.from("u1"),
    value: Buffer.from(JSON.stringify({ op: "upsert", key: "u1", features: { age } })),
    headers: {},
    timestampMs: 1,
  })),
});

describe("TableIngestor under a writer lease", () => {
  let root: string;
  let store: TableStore;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), "strata-ingest-fence-"));
    store = new TableStore(root, "users");
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it("stamps the lease epoch, and publishes nothing once the lease is lost (keeping the merge)", () => {
    let held = true;
    const ingestor = new TableIngestor(
      store,
      schema,
      {
        ...base,
        writerEpoch: 7,
        beforePublish: () => {
          if (!held) throw new LeaseLostError("users", 7, "taken by another node");
        },
      },
      silentLogger,
    );
    ingestor.open();
    ingestor.applyBatch(batch(0, [1, 2]));
    const first = ingestor.publish();
    expect(first.kind).toBe("published");
    expect(store.readManifest(1).manifest.writer_epoch).toBe(7);
    expect(store.readState().max_writer_epoch).toBe(7);

    held = false;
    ingestor.applyBatch(batch(2, [3]));
    const refused = ingestor.publish();
    expect(refused.kind).toBe("failed");
    expect(refused.kind === "failed" && refused.error).toBeInstanceOf(LeaseLostError);
    expect(store.listVersions()).toEqual([1]);
    expect(ingestor.status().pendingRows).toBe(1);
  });

  it("a deposed writer whose gate let it through is still refused on disk by the epoch fence", () => {
    store.ensureLayout();
    store.noteWriterEpoch(8); // this node has seen a newer writer take the lease
    const ingestor = new TableIngestor(store, schema, { ...base, writerEpoch: 7 }, silentLogger);
    ingestor.open();
    ingestor.applyBatch(batch(0, [1]));
    const outcome = ingestor.publish();
    expect(outcome.kind === "failed" && outcome.error).toBeInstanceOf(WriterFencedError);
    expect(store.listVersions()).toEqual([]);
  });
});
