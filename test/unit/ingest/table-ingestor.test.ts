import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TableStore } from "../../../src/storage/table-store.js";
import { VersionWriter } from "../../../src/storage/version-writer.js";
import { MappedSegmentCache } from "../../../src/storage/mapped-segment.js";
import { openSnapshot } from "../../../src/storage/version-snapshot.js";
import type { TableSchema } from "../../../src/format/schema.js";
import {
  CATCH_UP_PUBLISH_INTERVAL_MS,
  TableIngestor,
  type TableIngestorOptions,
} from "../../../src/ingest/table-ingestor.js";
import type { DeltaBatch, DeltaMessage } from "../../../src/ingest/delta-source.js";
import { silentLogger } from "../../../src/shared/logger.js";
import { DEAD_LETTER_HEADERS } from "../../../src/ingest/dead-letters.js";

const schema: TableSchema = {
  name: "users",
  key: "user_id",
  topic: "t.users",
  maxAgeMs: 0,
  features: [
    { name: "age", type: "int64" },
    { name: "city", type: "string" },
    { name: "emb", type: "float32[2]" },
  ],
};

const options: TableIngestorOptions = {
  publishIntervalMs: 200,
  publishMaxRows: 1000,
  compactMaxDeltas: 100,
  compactDeltaRatio: 100,
  keepVersions: 100,
  limits: { maxMessageBytes: 1 << 20, maxValueBytes: 1 << 16 },
  deadLetterTopic: "t.users.dlq",
  groupId: "strata-ingest.users",
};

let offsetSeq = 0n;
function msg(value: unknown, offset?: bigint, key: string | null = null): DeltaMessage {
  const o = offset ?? offsetSeq++;
  return {
    offset: o,
    key: key === null ? null : Buffer.from(key),
    value: Buffer.from(typeof value === "string" ? value : JSON.stringify(value)),
    headers: {},
    timestampMs: 1000 + Number(o),
  };
}
const batch = (partition: number, messages: DeltaMessage[], highWatermark?: bigint): DeltaBatch => ({
  topic: "t.users",
  partition,
  highWatermark: highWatermark ?? (messages.at(-1)?.offset ?? -1n) + 1n,
  messages,
});
const upsert = (key: string, features: Record<string, unknown>, eventTime?: number) => ({
  op: "upsert",
  key,
  features,
  ...(eventTime === undefined ? {} : { event_time_ms: eventTime }),
});

describe("TableIngestor", () => {
  let root: string;
  let store: TableStore;
  let now: number;
  let ingestor: TableIngestor;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), "strata-ingest-"));
    store = new TableStore(root, "users");
    now = 1_000_000;
    offsetSeq = 0n;
    ingestor = new TableIngestor(store, schema, options, silentLogger, () => now);
    ingestor.open();
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const read = (key: string) => {
    const snap = openSnapshot(store, new MappedSegmentCache(), store.requireCurrentVersion(), {
      verify: true,
      schema,
    });
    return snap.get(key);
  };
  const published = () => store.readManifest(store.requireCurrentVersion()).manifest;

  it("#publish() makes one version of the merge, with the next offset of each partition", () => {
    ingestor.applyBatch(
      batch(0, [
        msg(upsert("a", { age: 1, city: "x", emb: [1, 2] }, 10)),
        msg(upsert("b", { age: 2 })),
        msg(upsert("a", { city: "y" }, 12)),
      ]),
    );
    ingestor.applyBatch(batch(1, [msg({ op: "delete", key: "b" }, 7n)]));
    expect(ingestor.publishDue()).toBe(false);
    now += 200;
    expect(ingestor.publishDue()).toBe(true);
    const outcome = ingestor.publish();
    expect(outcome.kind).toBe("published");
    const m = published();
    expect(m.version).toBe(1);
    expect(m.reason).toBe("ingest");
    expect(m.kafka).toEqual({ topic: "t.users", offsets: { "0": "3", "1": "8" } });
    expect(read("a")).toEqual({
      status: "found",
      eventTimeMs: 12,
      values: [1n, "y", new Float32Array([1, 2])],
    });
    expect(read("b").status).toBe("absent"); // deleted after its upsert, in another partition's batch
    expect(ingestor.publish().kind).toBe("idle");
  });

  it("publishes less often while a backlog is caught up: by size, or every CATCH_UP_PUBLISH_INTERVAL_MS", () => {
    // The partition's high watermark is far ahead: more unread than one publish's worth.
    ingestor.applyBatch(batch(0, [msg(upsert("a", { age: 1 }))], 10_000n));
    now += 200;
    expect(ingestor.publishDue()).toBe(false);
    now += CATCH_UP_PUBLISH_INTERVAL_MS - 200;
    expect(ingestor.publishDue()).toBe(true);
    expect(ingestor.publish().kind).toBe("published");
    // By size at once.
    ingestor.applyBatch(
      batch(
        0,
        Array.from({ length: options.publishMaxRows }, (_, i) => msg(upsert(`k${i}`, { age: i }))),
        20_000n,
      ),
    );
    expect(ingestor.publishDue()).toBe(true);
    expect(ingestor.publish().kind).toBe("published");
    // Caught up (the watermark is close): the configured interval again.
    ingestor.applyBatch(batch(0, [msg(upsert("b", { age: 2 }))], offsetSeq + 5n));
    now += 200;
    expect(ingestor.publishDue()).toBe(true);
  });

  it("fills what a partial upsert does not carry from the stored row", () => {
    ingestor.applyBatch(batch(0, [msg(upsert("a", { age: 1, city: "x", emb: [1, 2] }))]));
    ingestor.publish();
    ingestor.applyBatch(batch(0, [msg(upsert("a", { age: 5 })), msg(upsert("n", { city: "new" }))]));
    expect(ingestor.publish().kind).toBe("published");
    expect(read("a").values).toEqual([5n, "x", new Float32Array([1, 2])]);
    expect(read("n").values).toEqual([null, "new", null]);
    // A delete then a partial upsert: the row starts again from nothing.
    ingestor.applyBatch(batch(0, [msg({ op: "delete", key: "a" }), msg(upsert("a", { city: "z" }))]));
    ingestor.publish();
    expect(read("a").values).toEqual([null, "z", null]);
    expect(published().segments.map((s) => s.kind)).toEqual(["base", "delta", "delta"]);
  });

  it("skips messages below the position (a replay) and takes offset gaps as they come", () => {
    ingestor.applyBatch(batch(0, [msg(upsert("a", { age: 1 }), 0n), msg(upsert("a", { age: 2 }), 1n)]));
    ingestor.applyBatch(
      batch(0, [
        msg(upsert("a", { age: 1 }), 0n),
        msg(upsert("a", { age: 2 }), 1n),
        msg(upsert("a", { age: 3 }), 5n),
      ]),
    );
    ingestor.publish();
    expect(read("a").values?.[0]).toBe(3n);
    expect(published().kafka?.offsets).toEqual({ "0": "6" });
    expect(ingestor.status().counters.replayedSkipped).toBe(2);
  });

  it("dead-letters invalid messages with their reason and applies the rest of the batch", () => {
    ingestor.applyBatch(
      batch(2, [
        msg(upsert("a", { age: 1 }), 0n),
        msg("{oops", 1n, "k1"),
        msg(upsert("b", { age: "x" }), 2n),
        msg(upsert("c", { age: 3 }), 3n),
      ]),
    );
    const letters = ingestor.takeDeadLetters();
    expect(letters.map((l) => [l.offset, l.problem])).toEqual([
      [1n, "bad_json"],
      [2n, "wrong_type"],
    ]);
    const h = letters[0]!.message.headers!;
    expect(h[DEAD_LETTER_HEADERS.sourceTopic]).toBe("t.users");
    expect(h[DEAD_LETTER_HEADERS.sourcePartition]).toBe("2");
    expect(h[DEAD_LETTER_HEADERS.sourceOffset]).toBe("1");
    expect(h[DEAD_LETTER_HEADERS.kind]).toBe("bad_json");
    expect(String(h[DEAD_LETTER_HEADERS.error])).toMatch(/^Value is not valid JSON/);
    expect(letters[0]!.message.value?.toString()).toBe("{oops");
    expect(letters[0]!.message.key?.toString()).toBe("k1");
    // Offsets whose dead letters are not acknowledged cannot be published.
    now += 1000;
    expect(ingestor.publish().kind).toBe("waiting_for_dead_letters");
    ingestor.acknowledgeDeadLetters(letters);
    expect(ingestor.publish().kind).toBe("published");
    expect(read("a").status).toBe("found");
    expect(read("c").status).toBe("found");
    expect(read("b").status).toBe("absent");
    expect(published().kafka?.offsets).toEqual({ "2": "4" });
    const s = ingestor.status();
    expect(s.counters.deadLetters).toBe(2);
    expect(s.counters.deadLettersByProblem).toEqual({ bad_json: 1, wrong_type: 1 });
  });

  it("publishes nothing while pinned, then resumes from the pinned version's offsets", () => {
    ingestor.applyBatch(batch(0, [msg(upsert("a", { age: 1 }), 0n)]));
    ingestor.publish(); // v1, offset 1
    ingestor.applyBatch(batch(0, [msg(upsert("a", { age: 2 }), 1n)]));
    ingestor.publish(); // v2, offset 2
    store.rollback({ verify: () => undefined }); // current = v1, pinned
    ingestor.applyBatch(batch(0, [msg(upsert("a", { age: 3 }), 2n)]));
    expect(ingestor.publish().kind).toBe("pinned");
    expect(ingestor.isPaused).toBe(true);
    expect(ingestor.status().state).toBe("pinned");
    expect(ingestor.status().pendingRows).toBe(0);
    expect(store.currentVersion()).toBe(1);
    expect(ingestor.resumeRequest()).toBe(null);
    store.resume();
    expect(ingestor.resumeRequest()).toBe("version");
    expect(ingestor.resumeAt(null).kind).toBe("idle");
    expect(ingestor.positionOf(0)).toBe(1n); // v1's offsets: message 1 is replayed
    ingestor.applyBatch(batch(0, [msg(upsert("a", { age: 2 }), 1n), msg(upsert("a", { age: 3 }), 2n)]));
    expect(ingestor.publish().kind).toBe("published");
    expect(store.currentVersion()).toBe(3); // above the rolled-back v2
    expect(read("a").values?.[0]).toBe(3n);
  });

  it("is blocked, not broken, by a current version of another schema, until compact rewrites it", () => {
    ingestor.applyBatch(batch(0, [msg(upsert("a", { age: 1, city: "x" }), 0n)]));
    ingestor.publish(); // v1 in the old schema, offset 1
    // The config gains a feature: ingest with it cannot merge onto v1's rows.
    const wider: TableSchema = {
      ...schema,
      features: [...schema.features, { name: "score", type: "float64" }],
    };
    const next = new TableIngestor(store, wider, options, silentLogger, () => now);
    next.open();
    expect(next.isBlocked).toBe(true);
    expect(next.status().state).toBe("blocked");
    expect(next.status().lastError?.message).toMatch(/another schema .*added score.*strata compact users/);
    next.applyBatch(batch(0, [msg(upsert("a", { age: 2, score: 0.5 }), 1n)]));
    expect(next.publish().kind).toBe("idle");
    next.retryBlocked(); // nothing moved: still blocked
    expect(next.isBlocked).toBe(true);
    expect(store.currentVersion()).toBe(1);
    // What `strata compact users` does with the new config: v2 in its schema, v1's offsets.
    new VersionWriter(store, wider).compact();
    next.retryBlocked();
    expect(next.isPaused).toBe(false);
    expect(next.positionOf(0)).toBe(1n);
    next.applyBatch(batch(0, [msg(upsert("a", { score: 0.5 }), 1n)]));
    expect(next.publish().kind).toBe("published");
    const snap = openSnapshot(store, new MappedSegmentCache(), store.requireCurrentVersion(), {
      verify: true,
      schema: wider,
    });
    expect(snap.get("a").values).toEqual([1n, "x", null, 0.5]);
  });

  it("reads a state file that does not parse as pinned: publishes nothing until it is mended", () => {
    ingestor.applyBatch(batch(0, [msg(upsert("a", { age: 1 }), 0n)]));
    ingestor.publish(); // v1
    writeFileSync(store.statePath, "{not json");
    ingestor.applyBatch(batch(0, [msg(upsert("a", { age: 2 }), 1n)]));
    expect(ingestor.publish().kind).toBe("pinned");
    expect(ingestor.status().lastError?.message).toMatch(/state\.json" is corrupt/);
    expect(ingestor.resumeRequest()).toBe(null);
    const reopened = new TableIngestor(store, schema, options, silentLogger, () => now);
    reopened.open();
    expect(reopened.isPaused).toBe(true);
    expect(store.currentVersion()).toBe(1);
    writeFileSync(store.statePath, JSON.stringify({ pinned: false }));
    expect(ingestor.resumeRequest()).toBe("version");
  });

  it("resumes from the latest offsets with a version that records them at once", () => {
    ingestor.applyBatch(batch(0, [msg(upsert("a", { age: 1 }), 0n)]));
    ingestor.publish();
    store.pin();
    expect(ingestor.followTableState()?.kind).toBe("pinned");
    store.resume("latest");
    expect(ingestor.resumeRequest()).toBe("latest");
    const outcome = ingestor.resumeAt(
      new Map([
        [0, 50n],
        [1, 7n],
      ]),
    );
    expect(outcome.kind).toBe("published");
    expect(published().kafka?.offsets).toEqual({ "0": "50", "1": "7" });
    expect(store.readState().resume_from).toBe("version");
    expect(read("a").values?.[0]).toBe(1n);
  });

  it("starts over from the current version when another process publishes", async () => {
    ingestor.applyBatch(batch(0, [msg(upsert("a", { age: 1 }), 0n)]));
    ingestor.publish();
    ingestor.applyBatch(batch(0, [msg(upsert("a", { age: 2 }), 1n)]));
    // An import from the CLI: a new base that keeps the parent's offsets.
    await new VersionWriter(store, schema).importRows(
      (async function* () {
        yield [{ key: "imported", eventTimeMs: 1, values: [9n, null, null] }];
      })(),
    );
    const generation = ingestor.generation;
    expect(ingestor.publish().kind).toBe("moved");
    expect(ingestor.generation).toBe(generation + 1);
    expect(ingestor.positionOf(0)).toBe(1n);
    ingestor.applyBatch(batch(0, [msg(upsert("a", { age: 2 }), 1n)]));
    ingestor.publish();
    expect(read("imported").values?.[0]).toBe(9n);
    expect(read("a").values?.[0]).toBe(2n);
  });

  it("compacts when the deltas pass the count, keeping the offsets, and applies retention", () => {
    const small = new TableIngestor(
      store,
      schema,
      { ...options, compactMaxDeltas: 3, keepVersions: 2 },
      silentLogger,
      () => now,
    );
    small.open();
    let offset = 0n;
    const versions: number[][] = [];
    for (let i = 0; i < 4; i++) {
      small.applyBatch(batch(0, [msg(upsert(`k${i}`, { age: i }), offset++)]));
      const outcome = small.publish();
      if (outcome.kind === "published") versions.push(outcome.versions.map((m) => m.version));
    }
    // v1 base; v2, v3 deltas; v4 a third delta, compacted into v5.
    expect(versions).toEqual([[1], [2], [3], [4, 5]]);
    const m = published();
    expect(m.reason).toBe("compact");
    expect(m.segments.map((s) => s.kind)).toEqual(["base"]);
    expect(m.kafka?.offsets).toEqual({ "0": "4" });
    expect(store.listVersions()).toEqual([4, 5]);
    expect(small.status().counters.compactions).toBe(1);
    expect(read("k3").values?.[0]).toBe(3n);
  });

  it("compacts by the ratio rule once caught up, not while a backlog remains", () => {
    const ratio = new TableIngestor(
      store,
      schema,
      { ...options, compactMaxDeltas: 100, compactDeltaRatio: 1, publishMaxRows: 10 },
      silentLogger,
      () => now,
    );
    ratio.open();
    ratio.applyBatch(batch(0, [msg(upsert("a", { age: 1 }), 0n), msg(upsert("b", { age: 1 }), 1n)]));
    ratio.publish(); // base of 2 rows
    // A delta as big as the base, with 1000 more messages waiting in the partition: no compaction.
    ratio.applyBatch(
      batch(
        0,
        [
          msg(upsert("c", { age: 1 }), 2n),
          msg(upsert("d", { age: 1 }), 3n),
          msg(upsert("e", { age: 1 }), 4n),
        ],
        1005n,
      ),
    );
    const behind = ratio.publish();
    expect(behind.kind === "published" && behind.versions.map((m) => m.reason)).toEqual(["ingest"]);
    // Caught up: the ratio rule applies again.
    ratio.applyBatch(batch(0, [msg(upsert("f", { age: 1 }), 5n)], 6n));
    const caughtUp = ratio.publish();
    expect(caughtUp.kind === "published" && caughtUp.versions.map((m) => m.reason)).toEqual([
      "ingest",
      "compact",
    ]);
  });

  it("dead-letters a partial upsert onto a stored row that fails its CRC check", () => {
    ingestor.applyBatch(batch(0, [msg(upsert("a", { age: 1, city: "x" }), 0n)]));
    ingestor.publish();
    // Make the snapshot report a corrupt row.
    const anyIngestor = ingestor as unknown as { snapshot: { get: (k: string) => unknown } };
    anyIngestor.snapshot = { get: () => ({ status: "corrupt", eventTimeMs: 0, values: null }) };
    ingestor.applyBatch(
      batch(0, [msg(upsert("a", { age: 2 }), 1n), msg(upsert("z", { age: 1, city: "c", emb: [0, 0] }), 2n)]),
    );
    expect(ingestor.takeDeadLetters().map((l) => l.problem)).toEqual(["stored_row_corrupt"]);
    expect(ingestor.status().pendingRows).toBe(1);
  });

  it("#status() reports the lag per partition and the event-time lag of the version", () => {
    ingestor.applyBatch(batch(0, [msg(upsert("a", { age: 1 }, 999_000), 0n)], 10n));
    ingestor.applyBatch(batch(1, [msg(upsert("b", { age: 1 }, 998_000), 4n)], 5n));
    let s = ingestor.status();
    expect(s.kafkaLag).toBe(15); // nothing published yet
    expect(s.version).toBe(null);
    expect(s.eventTimeLagMs).toBe(null);
    ingestor.publish();
    s = ingestor.status();
    expect(s.version).toBe(1);
    expect(s.kafkaLag).toBe(9);
    expect(s.partitions).toEqual([
      { partition: 0, nextOffset: "1", publishedOffset: "1", highWatermark: "10", lag: 9 },
      { partition: 1, nextOffset: "5", publishedOffset: "5", highWatermark: "5", lag: 0 },
    ]);
    expect(s.maxEventTimeMs).toBe(999_000);
    expect(s.eventTimeLagMs).toBe(now - 999_000);
    expect(s.lastPublishMs).toBe(now);
    expect(s.counters.versionsPublished).toBe(1);
  });

  it("publishes a base of upserts only on a fresh table (a delete of nothing is nothing)", () => {
    ingestor.applyBatch(batch(0, [msg({ op: "delete", key: "gone" }, 0n), msg(upsert("a", { age: 1 }), 1n)]));
    ingestor.publish();
    const m = published();
    expect(m.segments.map((s) => [s.kind, s.records, s.tombstones])).toEqual([["base", 1, 0]]);
  });
});
