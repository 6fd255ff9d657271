// Issue 5 §6 against the real broker: a table pinned by a rollback publishes nothing while deltas
// keep arriving; `resume` replays from the pinned version's offsets (the rolled-back versions'
// effects come back by replay, under new version numbers); `resume --from latest` skips what
// arrived while pinned.
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
  expectStoreMatchesModel,
  generateDeltas,
  ingestTestBed,
  kcatProduce,
  offsetsReached,
  publishedOffsets,
  testLogger,
  until,
} from "../helpers/ingest-kafka.js";

describe("ingest of a pinned table", () => {
  const bed = ingestTestBed("ingest-pin", 2);

  it("publishes nothing while pinned, replays from the pinned version on resume, skips ahead on resume from latest", async () => {
    const { topic, admin, root } = bed;
    const tables = parseTablesConfig({
      tables: [{ name: "users", key: "user_id", topic, features: TEST_FEATURES.map((f) => ({ ...f })) }],
    });
    const config = loadConfig(
      { dataDir: root, kafkaBrokers: kafkaBrokers().join(",") },
      { STRATA_INGEST_PUBLISH_INTERVAL_MS: "50", STRATA_KEEP_VERSIONS: "1000" },
    );
    const ingest = (bed.ingest = await startIngest({ config, tables, logger: testLogger("pin") }));
    const store = new TableStore(root, "users");
    const status = () => ingest.status("users");
    // Distinct event times per batch, so the batches can be told apart in the model.
    const [a, b, c, d, e] = [1, 2, 3, 4, 5].map((n) => generateDeltas(400, 100, n, n * 1_000_000));
    let n = 0;
    const produce = async (lines: string[]): Promise<Record<string, string>> => {
      await kcatProduce(topic, lines, join(root, `batch-${n++}.tsv`));
      const end = await endOffsets(admin, topic);
      return end;
    };

    const endA = await produce(a!);
    await until("A published", () => offsetsReached(store, endA), 20_000, status);
    const versionA = store.requireCurrentVersion();
    const endB = await produce(b!);
    await until("B published", () => offsetsReached(store, endB), 20_000, status);
    const newestBeforePin = Math.max(...store.listVersions());

    // strata rollback --to A: current goes back to A and the table is pinned.
    store.rollback({ to: versionA, verify: () => undefined });
    await until("ingest to see the pin", () => status().state === "pinned", 5_000, status);
    const endC = await produce(c!);
    await new Promise((r) => setTimeout(r, 1_500));
    expect(store.currentVersion()).toBe(versionA);
    expect(Math.max(...store.listVersions())).toBe(newestBeforePin);
    expect(status().pendingRows).toBe(0); // nothing consumed and held either
    await until("the lag to show what waits", () => (status().kafkaLag ?? 0) > 0, 5_000, status);

    // strata resume: replay from A's offsets: B and C come back, in new versions.
    store.resume();
    await until("B and C replayed", () => offsetsReached(store, endC), 20_000, status);
    expect(store.currentVersion()!).toBeGreaterThan(newestBeforePin);
    const abc = new DeltaModel();
    applyLines(abc, [...a!, ...b!, ...c!]);
    expectStoreMatchesModel(store, tables.tables[0]!, abc);

    // strata pin, then deltas D, then strata resume --from latest: D is skipped, E is applied.
    store.pin();
    await until("ingest to see the pin", () => status().state === "pinned", 5_000, status);
    const endD = await produce(d!);
    store.resume("latest");
    await until("a version at the latest offsets", () => offsetsReached(store, endD), 10_000, status);
    expect(store.readState().resume_from).toBe("version");
    expect(publishedOffsets(store)).toEqual(endD);
    const endE = await produce(e!);
    await until("E published", () => offsetsReached(store, endE), 20_000, status);
    const abce = new DeltaModel();
    applyLines(abce, [...a!, ...b!, ...c!, ...e!]);
    expectStoreMatchesModel(store, tables.tables[0]!, abce);
    expect(status().state).toBe("consuming");
  });
});
