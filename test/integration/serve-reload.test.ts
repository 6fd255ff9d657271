/**
 * SIGHUP to `strata serve` with the real broker: a table added to the config is ingested from its
 * topic without a restart, the tables ingested before go on, and a config ingest cannot take (two
 * tables on one topic) leaves ingest running on the previous one (docs/operations.md).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Admin } from "kafkajs";
import { kafkaBrokers } from "../helpers/services.js";
import { connectAdmin, createTopic, uniqueName, until } from "../helpers/ingest-kafka.js";
import { createStrataClient, type StrataClient } from "../../src/client/index.js";
import { startServe, type ServeProcess } from "../helpers/serve-process.js";
import { runStrata } from "../helpers/cli.js";

describe("serve + ingest, config reloaded", () => {
  const usersTopic = uniqueName("strata-it-reload-users");
  const itemsTopic = uniqueName("strata-it-reload-items");
  const users = { name: "users", key: "id", topic: usersTopic, features: [{ name: "n", type: "int64" }] };
  const items = {
    name: "items",
    key: "id",
    topic: itemsTopic,
    features: [{ name: "title", type: "string" }],
  };
  const env = { STRATA_KAFKA_BROKERS: kafkaBrokers().join(","), STRATA_REDIS_URL: "" };
  let admin: Admin;
  let dir: string;
  let server: ServeProcess;
  let client: StrataClient;

  const writeConfig = (tables: object[]) =>
    writeFileSync(join(dir, "tables.json"), JSON.stringify({ tables }));
  const produce = async (table: string, events: object[]) => {
    const file = join(dir, `${table}-${Date.now()}.jsonl`);
    writeFileSync(file, events.map((e) => JSON.stringify(e)).join("\n") + "\n");
    const r = await runStrata(dir, "data", ["produce", table, file], { env });
    expect(r.code, r.stderr).toBe(0);
  };
  const valueOf = async (table: string, key: string) => {
    const res = await client.getFeatures({ table, keys: [key] }).catch(() => null);
    return res?.rows[0]?.status === "ROW_STATUS_FOUND" ? String(res.rows[0].values[0]) : undefined;
  };

  beforeAll(async () => {
    admin = await connectAdmin();
    await createTopic(admin, usersTopic, 2);
    await createTopic(admin, itemsTopic, 2);
    dir = mkdtempSync(join(tmpdir(), "strata-it-reload-"));
    writeConfig([users]);
    server = await startServe(join(dir, "data"), join(dir, "tables.json"), {
      env: { ...env, STRATA_INGEST_PUBLISH_INTERVAL_MS: "100" },
    });
    client = createStrataClient(server.address);
  }, 60_000);

  afterAll(async () => {
    client?.close();
    await server?.stop();
    await admin?.deleteTopics({ topics: [usersTopic, itemsTopic] }).catch(() => undefined);
    await admin?.disconnect();
    rmSync(dir, { recursive: true, force: true });
  });

  it("ingests a table added by SIGHUP, and keeps ingesting when a reload is one ingest refuses", async () => {
    await produce("users", [{ op: "upsert", key: "u1", features: { n: 1 } }]);
    await until(
      "u1",
      async () => (await valueOf("users", "u1")) === "1",
      30_000,
      () => server.log().slice(-3000),
    );

    writeConfig([users, items]);
    server.proc.kill("SIGHUP");
    await until("the reload", () => server.log().includes('"msg":"config reloaded"'), 10_000);
    await produce("items", [{ op: "upsert", key: "i1", features: { title: "first" } }]);
    await produce("users", [{ op: "upsert", key: "u2", features: { n: 2 } }]);
    await until("i1", async () => (await valueOf("items", "i1")) === "first", 30_000);
    await until("u2", async () => (await valueOf("users", "u2")) === "2", 30_000);
    expect(await valueOf("users", "u1")).toBe("1");

    // Two tables on one topic: served, but ingest goes on with the config before.
    writeConfig([users, items, { ...items, name: "items_copy" }]);
    server.proc.kill("SIGHUP");
    await until(
      "the refusal",
      () => server.log().includes("ingest refused the reloaded table config"),
      30_000,
    );
    expect(server.log()).toContain("from one topic");
    await produce("items", [{ op: "upsert", key: "i2", features: { title: "second" } }]);
    await until("i2", async () => (await valueOf("items", "i2")) === "second", 30_000);
    expect(server.proc.exitCode).toBeNull();
  }, 120_000);
});
