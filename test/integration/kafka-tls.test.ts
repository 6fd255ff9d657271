// Kafka over TLS (STRATA_KAFKA_TLS), against a private broker with a TLS listener
// (scripts/services.sh, certificate of test/fixtures/tls): `strata produce` and ingest connect
// trusting that CA; a client without TLS settings is refused (exit 8).
import { join, resolve } from "node:path";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/config.js";
import { parseTablesConfig } from "../../src/config/tables-config.js";
import { TableStore } from "../../src/storage/table-store.js";
import { MappedSegmentCache } from "../../src/storage/mapped-segment.js";
import { openSnapshot } from "../../src/storage/version-snapshot.js";
import { startIngest, type Ingest } from "../../src/ingest/start-ingest.js";
import { runStrata } from "../helpers/cli.js";
import { testLogger, uniqueName, until } from "../helpers/ingest-kafka.js";
import { startPrivateBroker, type PrivateBroker } from "../helpers/private-broker.js";

describe("Kafka over TLS", () => {
  const ca = resolve("test/fixtures/tls/cert.pem");
  const topic = uniqueName("strata-it-tls");
  let broker: PrivateBroker | null = null;
  let root: string;
  let ingest: Ingest | null = null;
  beforeAll(async () => {
    broker = await startPrivateBroker({ tls: true });
    root = mkdtempSync(join(tmpdir(), "strata-it-tls-"));
  });
  afterAll(async () => {
    await ingest?.stop();
    await broker?.remove();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it("produces and ingests over TLS, trusting the broker's CA; plaintext is refused", async () => {
    const tables = {
      tables: [{ name: "users", key: "user_id", topic, features: [{ name: "age", type: "int64" }] }],
    };
    writeFileSync(join(root, "tables.json"), JSON.stringify(tables));
    writeFileSync(join(root, "d.jsonl"), '{"op":"upsert","key":"u1","features":{"age":41}}\n');
    const tls = { STRATA_KAFKA_BROKERS: broker!.tlsBrokers.join(","), STRATA_KAFKA_TLS: ca };
    const produce = (env: Record<string, string>) =>
      runStrata(root, ".", ["produce", "users", join(root, "d.jsonl")], { env, timeout: 60_000 });
    const plain = await produce({ STRATA_KAFKA_BROKERS: tls.STRATA_KAFKA_BROKERS, STRATA_KAFKA_TLS: "" });
    expect(plain.code).toBe(8);
    const sent = await produce(tls);
    expect(sent.code, sent.stderr).toBe(0);

    ingest = await startIngest({
      config: loadConfig({ dataDir: root }, { ...tls, STRATA_INGEST_PUBLISH_INTERVAL_MS: "50" }),
      tables: parseTablesConfig(tables),
      logger: testLogger("tls"),
    });
    const store = new TableStore(root, "users");
    await until(
      "u1 published",
      () => {
        const v = store.currentVersion();
        return (
          v !== null &&
          openSnapshot(store, new MappedSegmentCache(), v, { verify: false }).get("u1").status === "found"
        );
      },
      20_000,
      () => ingest!.status("users"),
    );
    const snap = openSnapshot(store, new MappedSegmentCache(), store.requireCurrentVersion(), {
      verify: true,
    });
    expect(snap.get("u1").values).toEqual([41n]);
  }, 120_000);
});
