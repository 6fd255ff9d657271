import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig, type Config } from "../../../src/config/config.js";
import { parseTablesConfig, type TablesConfig } from "../../../src/config/tables-config.js";
import { TableStore } from "../../../src/storage/table-store.js";
import { MappedSegmentCache } from "../../../src/storage/mapped-segment.js";
import { openSnapshot } from "../../../src/storage/version-snapshot.js";
import { TableLockedError } from "../../../src/storage/errors.js";
import { VersionWriter } from "../../../src/storage/version-writer.js";
import { startIngest, type Ingest } from "../../../src/ingest/start-ingest.js";
import { WRITER_LOCK_NAME } from "../../../src/ingest/writer-lock.js";
import { FakeDeltaProducer, FakeDeltaSource, FakeKafka } from "../../helpers/fake-delta-source.js";

const TOPIC = "t.users";

function tables(): TablesConfig {
  return parseTablesConfig({
    tables: [
      {
        name: "users",
        key: "user_id",
        topic: TOPIC,
        features: [
          { name: "age", type: "int64" },
          { name: "city", type: "string" },
        ],
      },
    ],
  });
}

async function until(what: string, check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("startIngest() with an in-memory Kafka", () => {
  let root: string;
  let config: Config;
  let kafka: FakeKafka;
  let source: FakeDeltaSource;
  let producer: FakeDeltaProducer;
  let ingest: Ingest | null;
  let published: number[];
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), "strata-loop-"));
    config = loadConfig(
      { dataDir: root, kafkaBrokers: "fake:9092" },
      { STRATA_INGEST_PUBLISH_INTERVAL_MS: "30", STRATA_KEEP_VERSIONS: "1000" },
    );
    kafka = new FakeKafka();
    kafka.createTopic(TOPIC, 2);
    source = new FakeDeltaSource(kafka);
    producer = new FakeDeltaProducer();
    ingest = null;
    published = [];
  });
  afterEach(async () => {
    await ingest?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  const start = async (): Promise<Ingest> => {
    ingest = await startIngest({
      config,
      tables: tables(),
      source,
      producer,
      tickMs: 10,
      onPublished: (_t, v) => published.push(v),
    });
    return ingest;
  };
  const store = () => new TableStore(root, "users");
  const row = (key: string) =>
    openSnapshot(store(), new MappedSegmentCache(), store().requireCurrentVersion(), { verify: false }).get(
      key,
    );
  const up = (key: string, features: Record<string, unknown>) =>
    JSON.stringify({ op: "upsert", key, features });
  const offsetsOfCurrent = () => {
    const v = store().currentVersion();
    return v === null ? undefined : store().readManifest(v).manifest.kafka?.offsets;
  };

  it("publishes what it consumes within the interval, then commits the published offsets", async () => {
    await start();
    kafka.produce(TOPIC, 0, { key: "a", value: up("a", { age: 1, city: "x" }) });
    kafka.produce(TOPIC, 1, { key: "b", value: up("b", { age: 2 }) });
    kafka.produce(TOPIC, 0, { key: "a", value: up("a", { age: 3 }) });
    await until(
      "a version with every offset",
      () => offsetsOfCurrent()?.["0"] === "2" && offsetsOfCurrent()?.["1"] === "1",
    );
    expect(row("a").values).toEqual([3n, "x"]);
    expect(row("b").values).toEqual([2n, null]);
    expect(published.length).toBeGreaterThan(0);
    await until("a commit", () => source.commits.length > 0);
    const last = source.commits.at(-1)!;
    expect(last.groupId).toBe("strata-ingest.users");
    expect([...last.offsets]).toEqual([
      [0, 2n],
      [1, 1n],
    ]);
    const s = ingest!.status("users");
    expect(s.state).toBe("consuming");
    expect(s.deadLetterTopic).toBe("t.users.dlq");
    expect(() => ingest!.status("nope")).toThrow(/not defined/);
  });

  it("applies batches many times larger than what may be in flight, in order, losing nothing", async () => {
    // 50 000 messages a batch: ~25 decode slices, three times the window of slices in flight.
    kafka.batchSize = 50_000;
    for (let i = 0; i < 120_000; i++) {
      kafka.produce(TOPIC, i % 2, { key: `k${i % 1000}`, value: up(`k${i % 1000}`, { age: i }) });
    }
    await start();
    await until(
      "every offset published",
      () => offsetsOfCurrent()?.["0"] === "60000" && offsetsOfCurrent()?.["1"] === "60000",
      20_000,
    );
    // Last write by offset wins: k(j) was last written by i = 119 000 + j.
    for (const j of [0, 1, 499, 998, 999])
      expect(row(`k${j}`).values?.[0], `k${j}`).toBe(BigInt(119_000 + j));
    expect(ingest!.status("users").counters.messages).toBe(120_000);
  }, 30_000);

  it("subscribes again after a source failure, from its positions, losing and repeating nothing", async () => {
    await start();
    for (let i = 0; i < 50; i++)
      kafka.produce(TOPIC, i % 2, { key: `k${i}`, value: up(`k${i}`, { age: i }) });
    await until("first version", () => store().currentVersion() !== null);
    kafka.down = true;
    source.failAll();
    for (let i = 50; i < 100; i++)
      kafka.produce(TOPIC, i % 2, { key: `k${i % 60}`, value: up(`k${i % 60}`, { age: i }) });
    await until("retrying state", () => ingest!.status("users").state === "retrying");
    expect(ingest!.status("users").lastError?.message).toMatch(/broker down/);
    kafka.down = false;
    await until(
      "all 100 offsets published",
      () => offsetsOfCurrent()?.["0"] === "50" && offsetsOfCurrent()?.["1"] === "50",
      15_000,
    );
    for (let i = 0; i < 60; i++) {
      const want = i < 40 ? i + 60 : i; // k0..k39 were written again by i = 60..99
      expect(row(`k${i}`).values?.[0], `k${i}`).toBe(BigInt(want));
    }
    expect(ingest!.status("users").counters.sourceFailures).toBeGreaterThan(0);
  });

  it("sends dead letters before publishing the offsets they stand for", async () => {
    producer.down = true;
    await start();
    kafka.produce(TOPIC, 0, { key: "a", value: up("a", { age: 1 }) });
    kafka.produce(TOPIC, 0, { key: "bad", value: "not json" });
    kafka.produce(TOPIC, 0, { key: "c", value: up("c", { age: 3 }) });
    await until("the batch is read", () => ingest!.status("users").counters.messages === 3);
    await new Promise((r) => setTimeout(r, 150));
    expect(store().currentVersion()).toBe(null); // nothing is published past an unsent dead letter
    expect(ingest!.status("users").pendingDeadLetters).toBe(1);
    producer.down = false;
    await until("published", () => offsetsOfCurrent()?.["0"] === "3", 15_000);
    const letters = producer.sent.get("t.users.dlq") ?? [];
    expect(letters.length).toBeGreaterThanOrEqual(1);
    expect(letters[0]!.headers!["strata-error-kind"]).toBe("bad_json");
    expect(letters[0]!.headers!["strata-source-offset"]).toBe("1");
    expect(row("a").status).toBe("found");
    expect(row("c").status).toBe("found");
  });

  it("stops consuming while pinned and replays from the pinned version after resume", async () => {
    await start();
    kafka.produce(TOPIC, 0, { key: "a", value: up("a", { age: 1 }) });
    await until("v1", () => offsetsOfCurrent()?.["0"] === "1");
    kafka.produce(TOPIC, 0, { key: "a", value: up("a", { age: 2 }) });
    await until("v2", () => offsetsOfCurrent()?.["0"] === "2");
    const before = store().currentVersion()!;
    store().rollback({ verify: () => undefined });
    const pinnedAt = store().currentVersion()!;
    expect(pinnedAt).toBeLessThan(before);
    await until("pinned", () => ingest!.status("users").state === "pinned");
    await until("subscription stopped", () => source.activeSubscriptions === 0);
    kafka.produce(TOPIC, 0, { key: "a", value: up("a", { age: 3 }) });
    await new Promise((r) => setTimeout(r, 150));
    expect(store().currentVersion()).toBe(pinnedAt);
    expect(store().listVersions().at(-1)).toBe(before);
    store().resume();
    await until("resumed and caught up", () => offsetsOfCurrent()?.["0"] === "3");
    expect(store().currentVersion()).toBeGreaterThan(before);
    expect(row("a").values?.[0]).toBe(3n);
  });

  it("waits, blocked, on a version of another schema until compact rewrites it, then catches up", async () => {
    // v1 written before the config gained "city".
    const [older] = parseTablesConfig({
      tables: [{ name: "users", key: "user_id", topic: TOPIC, features: [{ name: "age", type: "int64" }] }],
    }).tables;
    store().ensureLayout();
    new VersionWriter(store(), older!).publishDelta([{ key: "a", eventTimeMs: 1, values: [7n] }], null, null);
    await start();
    expect(ingest!.status("users").state).toBe("blocked");
    expect(ingest!.status("users").lastError?.message).toMatch(/added city.*strata compact users/);
    kafka.produce(TOPIC, 0, { key: "b", value: up("b", { age: 1, city: "x" }) });
    await new Promise((r) => setTimeout(r, 150));
    expect(source.activeSubscriptions).toBe(0);
    expect(store().listVersions()).toEqual([1]);
    new VersionWriter(store(), tables().tables[0]!).compact(); // `strata compact users`
    await until("unblocked and caught up", () => offsetsOfCurrent()?.["0"] === "1");
    expect(row("a").values).toEqual([7n, null]);
    expect(row("b").values).toEqual([1n, "x"]);
  });

  it("refuses a second ingestor on the same data dir and takes over a lock whose holder is dead", async () => {
    await start();
    await expect(startIngest({ config, tables: tables(), source, producer })).rejects.toBeInstanceOf(
      TableLockedError,
    );
    await ingest!.stop();
    ingest = null;
    // A lock left by a killed process (pid 2^22 + 1 is above Linux's pid_max default: never alive).
    writeFileSync(
      join(root, "users", WRITER_LOCK_NAME),
      JSON.stringify({ pid: 4194305, start: "1", host: "x", acquired_at_ms: 0 }),
    );
    await start();
    expect(ingest!.tables).toEqual(["users"]);
  });

  it("refuses two tables that share a topic", async () => {
    const shared = parseTablesConfig({
      tables: [
        { name: "a", key: "k", topic: "same", features: [{ name: "x", type: "bool" }] },
        { name: "b", key: "k", topic: "same", features: [{ name: "x", type: "bool" }] },
      ],
    });
    await expect(startIngest({ config, tables: shared, source, producer })).rejects.toThrow(
      /one topic "same"/,
    );
  });
});
