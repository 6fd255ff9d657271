// Kafka with authentication (STRATA_KAFKA_SASL_*), against the real broker's SASL/PLAIN listener
// (scripts/services.sh): `strata produce` and ingest authenticate and work; a wrong password is
// refused with a clear error, and ingest keeps retrying instead of failing.
import { join } from "node:path";
import { writeFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/config.js";
import { parseTablesConfig } from "../../src/config/tables-config.js";
import { TableStore } from "../../src/storage/table-store.js";
import { MappedSegmentCache } from "../../src/storage/mapped-segment.js";
import { openSnapshot } from "../../src/storage/version-snapshot.js";
import { startIngest } from "../../src/ingest/start-ingest.js";
import { kafkaSaslBrokers } from "../helpers/services.js";
import { runStrata } from "../helpers/cli.js";
import { ingestTestBed, testLogger, until } from "../helpers/ingest-kafka.js";

describe("Kafka with SASL/PLAIN", () => {
  const bed = ingestTestBed("sasl", 1);
  const sasl = (password: string) => ({
    STRATA_KAFKA_BROKERS: kafkaSaslBrokers().join(","),
    STRATA_KAFKA_SASL_MECHANISM: "plain",
    STRATA_KAFKA_SASL_USERNAME: "strata",
    STRATA_KAFKA_SASL_PASSWORD: password,
  });

  it("produces and ingests with the right password; a wrong one is refused, and ingest retries", async () => {
    const { topic, root } = bed;
    const tables = {
      tables: [{ name: "users", key: "user_id", topic, features: [{ name: "age", type: "int64" }] }],
    };
    writeFileSync(join(root, "tables.json"), JSON.stringify(tables));
    writeFileSync(
      join(root, "d.jsonl"),
      [
        '{"op":"upsert","key":"u1","features":{"age":7}}',
        '{"op":"upsert","key":"u2","features":{"age":9}}',
      ].join("\n") + "\n",
    );
    const produce = (password: string) =>
      runStrata(root, ".", ["produce", "users", join(root, "d.jsonl")], { env: sasl(password) });

    const refused = await produce("wrong");
    expect(refused.code).toBe(8);
    expect(refused.stderr).toMatch(/SASL|authentication/i);
    const sent = await produce("strata-test-secret");
    expect(sent.code, sent.stderr).toBe(0);

    const ingestWith = (password: string) =>
      startIngest({
        config: loadConfig({ dataDir: root }, { ...sasl(password), STRATA_INGEST_PUBLISH_INTERVAL_MS: "50" }),
        tables: parseTablesConfig(tables),
        logger: testLogger("sasl"),
      });
    const wrong = (bed.ingest = await ingestWith("wrong"));
    await until(
      "a refused subscription",
      () => wrong.status("users").lastError !== null,
      20_000,
      () => wrong.status("users"),
    );
    expect(wrong.status("users").state).toBe("retrying");
    expect(wrong.status("users").lastError?.message).toMatch(/SASL|authentication/i);
    await wrong.stop();

    const store = new TableStore(root, "users");
    const ingest = (bed.ingest = await ingestWith("strata-test-secret"));
    await until(
      "both deltas published",
      () => {
        const v = store.currentVersion();
        if (v === null) return false;
        const snap = openSnapshot(store, new MappedSegmentCache(), v, { verify: false });
        return snap.get("u2").status === "found";
      },
      20_000,
      () => ingest.status("users"),
    );
    const snap = openSnapshot(store, new MappedSegmentCache(), store.requireCurrentVersion(), {
      verify: true,
    });
    expect(snap.get("u1").values).toEqual([7n]);
    expect(snap.get("u2").values).toEqual([9n]);
  }, 90_000);
});
