// A feature added to the config, against the real broker (docs/operations.md, "Changing a table's
// features"): ingest with the new config waits, blocked, on a version written before; deltas
// naming the new feature wait in Kafka; `strata compact` rewrites the version in the config's
// schema and ingest catches up from its offsets, the new feature filled.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/config.js";
import { parseTablesConfig } from "../../src/config/tables-config.js";
import { TableStore } from "../../src/storage/table-store.js";
import { VersionWriter } from "../../src/storage/version-writer.js";
import { MappedSegmentCache } from "../../src/storage/mapped-segment.js";
import { openSnapshot } from "../../src/storage/version-snapshot.js";
import { startIngest } from "../../src/ingest/start-ingest.js";
import { kafkaBrokers } from "../helpers/services.js";
import {
  endOffsets,
  ingestTestBed,
  kcatProduce,
  offsetsReached,
  testLogger,
  until,
} from "../helpers/ingest-kafka.js";

describe("ingest after a feature was added to the config", () => {
  const bed = ingestTestBed("schema", 2);

  it("waits blocked until compact rewrites the version, then applies what waited", async () => {
    const { topic, admin, root } = bed;
    const config = (features: object[]) =>
      parseTablesConfig({ tables: [{ name: "users", key: "user_id", topic, features }] });
    const before = config([{ name: "age", type: "int64" }]).tables[0]!;
    const afterConfig = config([
      { name: "age", type: "int64" },
      { name: "score", type: "float64" },
    ]);
    const after = afterConfig.tables[0]!;
    const store = new TableStore(root, "users");
    store.ensureLayout();
    new VersionWriter(store, before).publishDelta(
      [
        { key: "u1", eventTimeMs: 1, values: [10n] },
        { key: "u2", eventTimeMs: 1, values: [20n] },
      ],
      null,
      null,
    );

    const ingest = (bed.ingest = await startIngest({
      config: loadConfig(
        { dataDir: root, kafkaBrokers: kafkaBrokers().join(",") },
        { STRATA_INGEST_PUBLISH_INTERVAL_MS: "50", STRATA_KEEP_VERSIONS: "1000" },
      ),
      tables: afterConfig,
      logger: testLogger("schema"),
    }));
    const status = () => ingest.status("users");
    expect(status().state).toBe("blocked");
    expect(status().lastError?.message).toMatch(/added score.*strata compact users/);

    const up = (key: string, features: object) =>
      `${key}\t${JSON.stringify({ op: "upsert", key, features })}`;
    await kcatProduce(
      topic,
      [up("u1", { score: 0.5 }), up("u3", { age: 30, score: 1.5 })],
      join(root, "a.tsv"),
    );
    const end = await endOffsets(admin, topic);
    await new Promise((r) => setTimeout(r, 500));
    expect(store.listVersions()).toEqual([1]);
    expect(status().state).toBe("blocked");

    new VersionWriter(store, after).compact(); // what `strata compact users` does with the new config
    await until("caught up after the compaction", () => offsetsReached(store, end), 20_000, status);
    expect(status().state).toBe("consuming");
    const snap = openSnapshot(store, new MappedSegmentCache(), store.requireCurrentVersion(), {
      verify: true,
      schema: after,
    });
    expect(snap.get("u1").values).toEqual([10n, 0.5]);
    expect(snap.get("u2").values).toEqual([20n, null]);
    expect(snap.get("u3").values).toEqual([30n, 1.5]);
  }, 60_000);
});
