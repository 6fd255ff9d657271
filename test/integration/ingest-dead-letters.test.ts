// Done-means of issue 5, against the real broker: malformed events land in the dead-letter topic
// with their reasons and their source topic, partition and offset in headers, while the good
// events of the same batches are applied.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kafka, logLevel, Partitioners, type Admin, type Consumer } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/config.js";
import { parseTablesConfig } from "../../src/config/tables-config.js";
import { TableStore } from "../../src/storage/table-store.js";
import { startIngest, type Ingest } from "../../src/ingest/start-ingest.js";
import { featureDeltaType } from "../../src/ingest/delta-protobuf.js";
import type { DeltaProblem } from "../../src/ingest/errors.js";
import { kafkaBrokers } from "../helpers/services.js";
import {
  DeltaModel,
  TEST_FEATURES,
  applyLines,
  connectAdmin,
  createTopic,
  endOffsets,
  expectStoreMatchesModel,
  generateDeltas,
  kcatProduce,
  offsetsReached,
  testLogger,
  uniqueName,
  until,
} from "../helpers/ingest-kafka.js";

const PARTITIONS = 3;

/** Bad lines ("key<TAB>value") and the problem each must be refused for. */
const BAD: [string, DeltaProblem, RegExp][] = [
  ['user:1\t{"op":"upsert","key":"user:1","features":{"age":1}', "bad_json", /not valid JSON/],
  [
    'user:2\t{"op":"upsert","key":"user:2","features":{"agee":1}}',
    "unknown_feature",
    /Unknown feature "agee"/,
  ],
  [
    'user:3\t{"op":"upsert","key":"user:3","features":{"age":1.5}}',
    "wrong_type",
    /Feature "age" \(int64\): expected an integer, got 1.5/,
  ],
  [
    'user:4\t{"op":"upsert","key":"user:4","features":{"emb":[1,2]}}',
    "wrong_type",
    /expected an array of 4 numbers, got 2/,
  ],
  ['\t{"op":"upsert","features":{"age":1}}', "missing_key", /has no key/],
  ['user:5\t{"op":"delete","key":"user:6"}', "key_mismatch", /differs from the Kafka message key "user:5"/],
  ['user:7\t{"op":"merge","key":"user:7"}', "bad_op", /"op" must be "upsert" or "delete", got "merge"/],
  [
    `user:8\t{"op":"upsert","key":"user:8","features":{"city":"${"x".repeat(5000)}"}}`,
    "oversize",
    /over the limit of 4096/,
  ],
  ['user:9\t{"op":"upsert","key":"user:9","feature":{"age":1}}', "unknown_field", /Unknown field "feature"/],
  ['user:10\t{"op":"delete","key":"user:10","event_time_ms":"yesterday"}', "bad_event_time", /event_time_ms/],
  ['user:11\t{"op":"delete","key":"user:11","table":"orders"}', "wrong_table", /names table "orders"/],
];

interface Letter {
  value: string;
  headers: Record<string, string>;
}

describe("dead letters of ingest", () => {
  const topic = uniqueName("strata-it-ingest-dlq");
  const dlq = `${topic}.dlq`;
  let admin: Admin;
  let kafka: Kafka;
  let consumer: Consumer | null = null;
  let root: string;
  let ingest: Ingest | null = null;

  beforeAll(async () => {
    admin = await connectAdmin();
    await createTopic(admin, topic, PARTITIONS);
    await createTopic(admin, dlq, 1);
    kafka = new Kafka({ clientId: "strata-it-dlq", brokers: kafkaBrokers(), logLevel: logLevel.NOTHING });
    root = mkdtempSync(join(tmpdir(), "strata-it-dlq-"));
  });
  afterAll(async () => {
    await ingest?.stop();
    await consumer?.disconnect();
    await admin.deleteTopics({ topics: [topic, dlq] }).catch(() => undefined);
    await admin.disconnect();
    rmSync(root, { recursive: true, force: true });
  });

  it("dead-letters each malformed event with its reason and source, and applies the good ones of the same batches", async () => {
    const good = generateDeltas(3000, 300, 7);
    // Bad lines spread through the good ones, so they share batches.
    const lines: string[] = [];
    const step = Math.floor(good.length / BAD.length);
    good.forEach((line, i) => {
      lines.push(line);
      if (i % step === step - 1 && i / step < BAD.length) lines.push(BAD[Math.floor(i / step)]![0]);
    });
    expect(lines.length).toBe(good.length + BAD.length);
    await kcatProduce(topic, lines, join(root, "mixed.tsv"));
    // Protobuf: one good upsert, one undecodable value, one unknown content type (kcat cannot send those).
    const FeatureDelta = featureDeltaType();
    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    await producer.send({
      topic,
      acks: -1,
      messages: [
        {
          key: "proto:1",
          value: Buffer.from(
            FeatureDelta.encode(
              FeatureDelta.fromObject({ op: 1, features: { age: { int64_value: 42 } }, event_time_ms: 5 }),
            ).finish(),
          ),
          headers: { "content-type": "application/x-protobuf" },
        },
        {
          key: "proto:2",
          value: Buffer.from([0x0a, 0xff, 0xff, 0xff]),
          headers: { "content-type": "application/x-protobuf" },
        },
        { key: "proto:3", value: "a,b,c", headers: { "content-type": "text/csv" } },
      ],
    });
    await producer.disconnect();
    const end = await endOffsets(admin, topic);

    const tables = parseTablesConfig({
      tables: [{ name: "users", key: "user_id", topic, features: TEST_FEATURES.map((f) => ({ ...f })) }],
    });
    const config = loadConfig(
      { dataDir: root, kafkaBrokers: kafkaBrokers().join(",") },
      { STRATA_INGEST_MAX_MESSAGE_BYTES: "4096", STRATA_INGEST_PUBLISH_INTERVAL_MS: "100" },
    );
    ingest = await startIngest({ config, tables, logger: testLogger("dlq") });
    const store = new TableStore(root, "users");
    await until(
      "every offset published",
      () => offsetsReached(store, end),
      30_000,
      () => ingest?.status("users"),
    );

    // The good events are all there, as if the bad ones had never been sent.
    const model = new DeltaModel();
    applyLines(model, good);
    model.apply("proto:1", JSON.stringify({ op: "upsert", features: { age: 42 }, event_time_ms: 5 }));
    expectStoreMatchesModel(store, tables.tables[0]!, model);

    // Every bad one is in the dead-letter topic, once (no crash happened, so no replay), with its reason.
    const expected = BAD.length + 2;
    const source = await readTopic(
      topic,
      Object.values(end).reduce((n, o) => n + Number(o), 0),
    );
    const letters = await readTopic(dlq, expected);
    expect(letters).toHaveLength(expected);
    for (const [line, problem, reason] of BAD) {
      const value = line.slice(line.indexOf("\t") + 1);
      const letter = letters.find((l) => l.value === value);
      expect(letter, `dead letter of ${line.slice(0, 60)}`).toBeDefined();
      expect(letter!.headers["strata-error-kind"]).toBe(problem);
      expect(letter!.headers["strata-error"]).toMatch(reason);
    }
    expect(letters.find((l) => l.headers["strata-error-kind"] === "bad_protobuf")).toBeDefined();
    expect(letters.find((l) => l.headers["strata-error-kind"] === "unsupported_content_type")?.value).toBe(
      "a,b,c",
    );
    for (const l of letters) {
      expect(l.headers["strata-source-topic"]).toBe(topic);
      expect(l.headers["strata-table"]).toBe("users");
      // The source headers point at the very message.
      const at = `${l.headers["strata-source-partition"]}:${l.headers["strata-source-offset"]}`;
      expect(source.get(at), at).toBe(l.value);
    }
    const status = ingest.status("users");
    expect(status.counters.deadLetters).toBe(expected);
    expect(status.counters.deadLettersByProblem.wrong_type).toBe(2);
    expect(status.pendingDeadLetters).toBe(0);
  });

  /** Reads `count` messages of a topic from the start: partition:offset → value (or the list, with headers). */
  async function readTopic(name: string, count: number): Promise<Letter[] & Map<string, string>> {
    consumer = kafka.consumer({ groupId: uniqueName("strata-it-dlq-reader"), maxWaitTimeInMs: 100 });
    await consumer.connect();
    await consumer.subscribe({ topic: name, fromBeginning: true });
    const list: Letter[] = [];
    const byPosition = new Map<string, string>();
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(message.headers ?? {}))
          headers[k] = String(Array.isArray(v) ? v[0] : v);
        const value = message.value?.toString("utf8") ?? "";
        list.push({ value, headers });
        byPosition.set(`${partition}:${message.offset}`, value);
      },
    });
    await until(`${count} messages of ${name}`, () => list.length >= count, 30_000);
    await new Promise((r) => setTimeout(r, 300)); // anything beyond the expected count would show up
    await consumer.disconnect();
    consumer = null;
    return Object.assign(list, { get: (k: string) => byPosition.get(k) }) as unknown as Letter[] &
      Map<string, string>;
  }
});
