// Done-means of issue 5, against the real broker: deltas produced with Debian's kcat (librdkafka,
// not kafkajs) — upserts, partial upserts and deletes — all become visible in published versions,
// and the final state equals a model computed independently from the same lines.
//
// STRATA_IT_INGEST_DELTAS sets the number of deltas (default 100000, the figure).
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/config.js";
import { parseTablesConfig } from "../../src/config/tables-config.js";
import { TableStore } from "../../src/storage/table-store.js";
import { startIngest } from "../../src/ingest/start-ingest.js";
import { kafkaBrokers } from "../helpers/services.js";
import {
  DeltaModel,
  TEST_FEATURES,
  applyLines,
  endOffsets,
  expectOffsetsOnlyIncrease,
  expectStoreMatchesModel,
  generateDeltas,
  ingestTestBed,
  kcatProduce,
  offsetsReached,
  testLogger,
  until,
} from "../helpers/ingest-kafka.js";

const DELTAS = Number(process.env.STRATA_IT_INGEST_DELTAS ?? 100_000);
const KEYS = Math.max(100, Math.round(DELTAS / 10));
const PARTITIONS = 3;

describe("ingest of kcat-produced deltas", () => {
  const bed = ingestTestBed("ingest-kcat", PARTITIONS);

  it(`makes ${DELTAS} deltas visible, and the final version equals the model`, async () => {
    const { topic, admin, root } = bed;
    const schema = { name: "users", key: "user_id", topic, features: TEST_FEATURES.map((f) => ({ ...f })) };
    const tables = parseTablesConfig({ tables: [schema] });
    const config = loadConfig(
      { dataDir: root, kafkaBrokers: kafkaBrokers().join(",") },
      { STRATA_KEEP_VERSIONS: "100000", STRATA_INGEST_PUBLISH_INTERVAL_MS: "100" },
    );
    const lines = generateDeltas(DELTAS, KEYS, 20261122);
    const half = Math.floor(lines.length / 2);
    // Half before ingest starts (a backlog), half while it runs.
    await kcatProduce(topic, lines.slice(0, half), join(root, "first.tsv"));
    const published: number[] = [];
    const started = performance.now();
    const ingest = (bed.ingest = await startIngest({
      config,
      tables,
      logger: testLogger("kcat"),
      onPublished: (_t, v) => published.push(v),
    }));
    await kcatProduce(topic, lines.slice(half), join(root, "second.tsv"));
    const end = await endOffsets(admin, topic);
    expect(Object.values(end).reduce((n, o) => n + Number(o), 0)).toBe(DELTAS);
    const store = new TableStore(root, "users");
    await until(
      "every offset in a published version",
      () => offsetsReached(store, end),
      60_000,
      () => ingest.status("users"),
    );
    const seconds = (performance.now() - started) / 1000;

    const model = new DeltaModel();
    applyLines(model, lines);
    expectStoreMatchesModel(store, tables.tables[0]!, model);
    const versions = expectOffsetsOnlyIncrease(store);
    const status = ingest.status("users");
    expect(status.counters.deadLetters).toBe(0);
    expect(status.counters.messages).toBe(DELTAS);
    expect(status.kafkaLag).toBe(0);
    expect(published.length).toBeGreaterThan(0);
    expect(status.counters.versionsPublished).toBeGreaterThan(0);
    console.log(
      `[ingest-kcat] ${DELTAS} deltas over ${KEYS} keys in ${seconds.toFixed(1)} s: ${status.counters.versionsPublished} ` +
        `delta versions, ${status.counters.compactions} compactions, ${versions} versions retained, ${model.liveRows} live rows`,
    );
  });
});
