// Done means (issue 6), with Kafka: two writer nodes ingest one topic under the writer lease; the
// holder is killed (kill -9) in the middle of the stream; the standby takes the lease within the
// TTL, resumes from the last published manifest's offsets, and when the stream ends every node
// serves exactly the model. A publish under the old writer's epoch is refused on disk.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kafka, logLevel, type Producer } from "kafkajs";
import { FleetHarness, servedVersion, until, type NodeProcess } from "../helpers/fleet-processes.js";
import { connectAdmin, createTopic, uniqueName } from "../helpers/ingest-kafka.js";
import { kafkaBrokers, redisUrl } from "../helpers/services.js";
import { parseTablesConfig } from "../../src/config/tables-config.js";
import { TableStore } from "../../src/storage/table-store.js";
import { VersionWriter } from "../../src/storage/version-writer.js";
import { WriterFencedError } from "../../src/storage/errors.js";
import type { RedisCoordinationStore } from "../../src/control/redis-coordination-store.js";

const TTL_MS = 2000;
const KEYS = 200;

type Row = { age: number; city: string };

describe("fleet failover during a Kafka stream (two writers + a replica)", () => {
  const topic = uniqueName("strata.fleet");
  let h: FleetHarness;
  let a: NodeProcess;
  let b: NodeProcess;
  let r: NodeProcess;
  let coord: RedisCoordinationStore;
  let producer: Producer;
  const model = new Map<string, Row>();
  let seq = 0;

  /** Sends `n` deltas (upserts, partial upserts and deletes over KEYS keys) and applies them to the model. */
  async function send(n: number): Promise<void> {
    const messages = [];
    for (let i = 0; i < n; i++, seq++) {
      const key = `u${(seq * 7919) % KEYS}`;
      const old = model.get(key);
      let value: object;
      if (seq % 17 === 0 && old) {
        value = { op: "delete", key };
        model.delete(key);
      } else if (seq % 5 === 0 && old) {
        value = { op: "upsert", key, features: { age: seq } }; // partial: city stays
        model.set(key, { ...old, age: seq });
      } else {
        value = {
          op: "upsert",
          key,
          features: { age: seq, city: `c${seq % 23}` },
          event_time_ms: 1_700_000_000_000 + seq,
        };
        model.set(key, { age: seq, city: `c${seq % 23}` });
      }
      messages.push({ key, value: JSON.stringify(value) });
    }
    await producer.send({ topic, messages });
  }

  /** True when the node answers exactly the model for every key. */
  async function matchesModel(node: NodeProcess): Promise<boolean> {
    const keys = Array.from({ length: KEYS }, (_, i) => `u${i}`);
    const res = await node.client.getFeatures({ table: "users", keys }).catch(() => null);
    if (!res) return false;
    return res.rows.every((row) => {
      const want = model.get(row.key);
      if (!want) return row.status === "ROW_STATUS_NOT_FOUND";
      return (
        row.status === "ROW_STATUS_FOUND" && row.values[0] === String(want.age) && row.values[1] === want.city
      );
    });
  }

  beforeAll(async () => {
    const admin = await connectAdmin();
    await createTopic(admin, topic, 2);
    await admin.disconnect();
    producer = new Kafka({
      clientId: "strata-it-fleet",
      brokers: kafkaBrokers(),
      logLevel: logLevel.NOTHING,
    }).producer();
    await producer.connect();
    h = new FleetHarness(
      redisUrl(),
      {
        STRATA_LEASE_TTL_MS: String(TTL_MS),
        STRATA_INGEST_PUBLISH_INTERVAL_MS: "100",
        STRATA_INGEST_GROUP_PREFIX: `it-${topic}.`,
      },
      topic,
    );
    coord = await h.connect();
    const kafka = { STRATA_KAFKA_BROKERS: kafkaBrokers().join(",") };
    a = await h.startNode("writer-a", "writer", kafka);
    await until("a holds the lease", async () => (await coord.getLease("users"))?.node === "writer-a");
    [b, r] = await Promise.all([h.startNode("writer-b", "writer", kafka), h.startNode("replica", "replica")]);
  });
  afterAll(async () => {
    await producer?.disconnect();
    await coord?.close();
    await h?.close();
  });

  it("the standby resumes from the last published offsets; the final state equals the model everywhere", async () => {
    await send(1500);
    await until(
      "every node serves the first part of the stream",
      async () => (await Promise.all([a, b, r].map(matchesModel))).every(Boolean),
      30_000,
    );

    // Mid-stream: more deltas go in, and the writer is killed while it ingests them.
    const sending = send(1500);
    await new Promise((resolve) => setTimeout(resolve, 150));
    await a.kill();
    const killedAt = Date.now();
    await sending;
    await until(
      "b takes the lease",
      async () => (await coord.getLease("users"))?.node === "writer-b",
      10_000,
    );
    expect(Date.now() - killedAt).toBeLessThan(TTL_MS + TTL_MS / 10 + 300);
    await send(1000); // and after the takeover

    await until(
      "b and the replica serve the model",
      async () => (await Promise.all([b, r].map(matchesModel))).every(Boolean),
      30_000,
    );
    // The replica serves b's newest version, byte for byte the same manifest.
    const bVersion = await servedVersion(b);
    await until("the replica on b's version", async () => (await servedVersion(r)) === bVersion, 5000);
    expect(r.store.readManifest(bVersion).sha256).toBe(b.store.readManifest(bVersion).sha256);

    // Versions b published carry its epoch; those before the takeover carry a's.
    const epochB = (await coord.getLease("users"))!.epoch;
    expect(epochB).toBe(2);
    const current = b.store.readManifest(bVersion).manifest;
    expect(current.writer_epoch).toBe(epochB);
    expect(current.kafka?.topic).toBe(topic);
    expect(b.store.readState().max_writer_epoch).toBe(epochB);
  });

  it("a publish under the old writer's epoch is refused by the storage fence", async () => {
    const copy = mkdtempSync(join(tmpdir(), "strata-fence-"));
    try {
      cpSync(join(b.dataDir, "users"), join(copy, "users"), { recursive: true, verbatimSymlinks: true });
      const store = new TableStore(copy, "users");
      const schema = parseTablesConfig({
        tables: [
          {
            name: "users",
            key: "user_id",
            topic,
            features: [
              { name: "age", type: "int64" },
              { name: "city", type: "string" },
            ],
          },
        ],
      }).tables[0]!;
      const current = store.requireCurrentVersion();
      const stale = () =>
        new VersionWriter(store, schema).publishDelta(
          [{ key: "u1", eventTimeMs: 1, values: [1n, "stale"] }],
          null,
          current,
          1,
        );
      expect(stale).toThrow(WriterFencedError);
      expect(store.currentVersion()).toBe(current);
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });
});
