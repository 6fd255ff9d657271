// Done-means of issue 5, against a real broker restarted mid-ingest: while the broker is down the
// ingestor retries with a backoff and never throws, the table stays readable the whole time, and
// once the broker is back ingest catches up on its own with nothing lost or applied twice.
//
// The broker is a private one (scripts/services.sh with its own state folder and ports): the
// shared broker of the other integration tests is never stopped.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Admin } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/config.js";
import { parseTablesConfig } from "../../src/config/tables-config.js";
import { MappedSegmentCache } from "../../src/storage/mapped-segment.js";
import { TableStore } from "../../src/storage/table-store.js";
import { openSnapshot } from "../../src/storage/version-snapshot.js";
import { startIngest, type Ingest } from "../../src/ingest/start-ingest.js";
import {
  DeltaModel,
  TEST_FEATURES,
  applyLines,
  connectAdmin,
  createTopic,
  endOffsets,
  expectOffsetsOnlyIncrease,
  expectStoreMatchesModel,
  generateDeltas,
  kcatProduce,
  offsetsReached,
  testLogger,
  uniqueName,
  until,
} from "../helpers/ingest-kafka.js";
import { startPrivateBroker, type PrivateBroker } from "../helpers/private-broker.js";

describe("ingest through a broker restart", () => {
  const topic = uniqueName("strata-it-ingest-restart");
  let broker: PrivateBroker | null = null;
  let brokers: string[];
  let admin: Admin | null = null;
  let root: string;
  let ingest: Ingest | null = null;

  beforeAll(async () => {
    broker = await startPrivateBroker();
    brokers = broker.brokers;
    admin = await connectAdmin(brokers);
    await createTopic(admin, topic, 3);
    root = mkdtempSync(join(tmpdir(), "strata-it-restart-"));
  });
  afterAll(async () => {
    await ingest?.stop();
    await admin?.disconnect().catch(() => undefined);
    await broker?.remove();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it("retries while the broker is down, keeps the table readable, and catches up with nothing lost or doubled", async () => {
    const tables = parseTablesConfig({
      tables: [{ name: "users", key: "user_id", topic, features: TEST_FEATURES.map((f) => ({ ...f })) }],
    });
    const config = loadConfig(
      { dataDir: root, kafkaBrokers: brokers.join(",") },
      { STRATA_INGEST_PUBLISH_INTERVAL_MS: "50", STRATA_KEEP_VERSIONS: "1000" },
    );
    ingest = await startIngest({ config, tables, logger: testLogger("restart") });
    const store = new TableStore(root, "users");
    const status = () => ingest!.status("users");
    const [a, b, c] = [1, 2, 3].map((n) => generateDeltas(3_000, 500, n * 11, n * 1_000_000));

    await kcatProduce(topic, a!, join(root, "a.tsv"), brokers);
    await until(
      "A published",
      async () => offsetsReached(store, await endOffsets(admin!, topic)),
      20_000,
      status,
    );

    // B goes in just before the broker stops: some of it may be consumed, some not yet.
    await kcatProduce(topic, b!, join(root, "b.tsv"), brokers);
    const endB = await endOffsets(admin!, topic);
    await admin!.disconnect();
    admin = null;

    // Readers never notice: the current version stays readable through the outage.
    let reads = 0;
    let readErrors = 0;
    const reader = setInterval(() => {
      try {
        const v = store.currentVersion();
        if (v !== null) openSnapshot(store, new MappedSegmentCache(), v, { verify: false }).get("user:1");
        reads++;
      } catch {
        readErrors++;
      }
    }, 20);
    try {
      await broker!.stop();
      await until("ingest to notice the outage", () => status().state === "retrying", 60_000, status);
      const failuresDuringOutage = status().counters.sourceFailures;
      expect(failuresDuringOutage).toBeGreaterThan(0);
      expect(status().lastError?.message).toBeTruthy();
      await new Promise((r) => setTimeout(r, 1_500)); // more retries, with backoff, while down

      await broker!.start();
      admin = await connectAdmin(brokers);
      await kcatProduce(topic, c!, join(root, "c.tsv"), brokers);
      const endC = await endOffsets(admin, topic);
      expect(Object.values(endC).reduce((s, o) => s + Number(o), 0)).toBe(9_000);
      await until("ingest to catch up on its own", () => offsetsReached(store, endC), 45_000, status);
      expect(offsetsReached(store, endB)).toBe(true);
    } finally {
      clearInterval(reader);
    }
    expect(readErrors).toBe(0);
    expect(reads).toBeGreaterThan(10);
    const model = new DeltaModel();
    applyLines(model, [...a!, ...b!, ...c!]);
    expectStoreMatchesModel(store, tables.tables[0]!, model);
    expectOffsetsOnlyIncrease(store);
    expect(status().state).toBe("consuming");
  });
});
