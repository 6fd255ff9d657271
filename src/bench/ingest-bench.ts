/**
 * Ingest figures against the Kafka broker of STRATA_KAFKA_BROKERS (scripts/services.sh up):
 *
 * - throughput: a backlog of deltas (full upserts, partial upserts, deletes) in a 3-partition
 *   topic, consumed from start to a published version holding the last offset: deltas/s.
 * - freshness: deltas produced at a steady rate (10 000/s) while ingest runs; for each, the time
 *   from the start of its produce call to the moment a version that holds it was published
 *   (checked by looking the key up with openSnapshot): p50 and p99.
 *
 * Producer, broker and ingestor share the machine. Issue 5's targets: ≥ 100 000 deltas/s;
 * p99 ≤ 1 s at 10 000 deltas/s.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { loadConfig, type Config } from "../config/config.js";
import { parseTablesConfig, type TablesConfig } from "../config/tables-config.js";
import { UnavailableError } from "../shared/errors.js";
import { MappedSegmentCache } from "../storage/mapped-segment.js";
import { TableStore } from "../storage/table-store.js";
import { openSnapshot } from "../storage/version-snapshot.js";
import { createKafka, KafkaDeltaProducer, kafkaClientOptions } from "../ingest/kafka-delta-source.js";
import type { OutgoingMessage } from "../ingest/delta-source.js";
import { startIngest } from "../ingest/start-ingest.js";
import { CATCH_UP_PUBLISH_INTERVAL_MS } from "../ingest/table-ingestor.js";
import { log, percentile, round, type Metric } from "./metric.js";

const PARTITIONS = 3;
const FEATURES = [
  { name: "age", type: "int64" },
  { name: "score", type: "float64" },
  { name: "city", type: "string" },
  { name: "active", type: "bool" },
  { name: "emb", type: "float32[8]" },
];
const EMB = [0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4];

export async function benchIngest(opts: { quick: boolean }): Promise<Metric[]> {
  const base = loadConfig();
  if (base.kafkaBrokers.length === 0) {
    throw new UnavailableError(
      "The ingest benchmark needs a Kafka broker: run scripts/services.sh up and set STRATA_KAFKA_BROKERS",
    );
  }
  const root = mkdtempSync(join(tmpdir(), "strata-bench-ingest-"));
  const kafka = createKafka(kafkaClientOptions(base, "strata-bench"));
  const admin = kafka.admin();
  await admin.connect();
  const topics: string[] = [];
  const newTopic = async (name: string): Promise<string> => {
    const topic = `strata-bench-${name}-${randomUUID().slice(0, 8)}`;
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: PARTITIONS }] });
    topics.push(topic, `${topic}.dlq`);
    return topic;
  };
  try {
    return [
      ...(await throughput(opts, base, root, await newTopic("throughput"))),
      ...(await freshness(opts, base, root, await newTopic("freshness"))),
    ];
  } finally {
    await admin.deleteTopics({ topics }).catch(() => undefined);
    await admin.disconnect();
    rmSync(root, { recursive: true, force: true });
  }
}

function tablesFor(table: string, topic: string): TablesConfig {
  return parseTablesConfig({ tables: [{ name: table, key: "user_id", topic, features: FEATURES }] });
}

function configFor(base: Config, dataDir: string): Config {
  return { ...base, dataDir };
}

/** One delta: 60% full upserts, 30% partial, 10% deletes, over `keys` keys. */
function delta(i: number, keys: number): OutgoingMessage {
  const key = `user:${(i * 7919) % keys}`;
  const dice = i % 10;
  const event =
    dice === 0
      ? { op: "delete", key, event_time_ms: Date.now() }
      : dice <= 3
        ? { op: "upsert", key, features: { age: i, active: i % 2 === 0 }, event_time_ms: Date.now() }
        : {
            op: "upsert",
            key,
            features: { age: i, score: i / 8, city: `city-${i % 1000}`, active: true, emb: EMB },
            event_time_ms: Date.now(),
          };
  return { key, value: JSON.stringify(event) };
}

async function throughput(
  opts: { quick: boolean },
  base: Config,
  root: string,
  topic: string,
): Promise<Metric[]> {
  const count = opts.quick ? 200_000 : 1_000_000;
  const keys = count / 5;
  log(`ingest: producing a backlog of ${count} deltas over ${keys} keys into ${PARTITIONS} partitions`);
  const producer = new KafkaDeltaProducer(kafkaClientOptions(base, "strata-bench-producer"));
  const batch = 10_000;
  try {
    for (let i = 0; i < count; i += batch) {
      await producer.send(
        topic,
        Array.from({ length: Math.min(batch, count - i) }, (_, j) => delta(i + j, keys)),
      );
    }
  } finally {
    await producer.close();
  }
  const store = new TableStore(join(root, "throughput"), "bench_tp");
  const started = performance.now();
  let done = 0;
  let versions = 0;
  const ingest = await startIngest({
    config: configFor(base, join(root, "throughput")),
    tables: tablesFor("bench_tp", topic),
    onPublished: (_t, v) => {
      versions++;
      const offsets = store.readManifest(v).manifest.kafka?.offsets ?? {};
      done = Object.values(offsets).reduce((n, o) => n + Number(o), 0);
    },
  });
  let seconds = 0;
  try {
    while (done < count) {
      if (performance.now() - started > 300_000)
        throw new Error(`Ingest did not catch up in 300 s (${done} of ${count})`);
      await new Promise((r) => setTimeout(r, 2));
    }
    seconds = (performance.now() - started) / 1000;
  } finally {
    await ingest.stop();
  }
  const rate = Math.round(count / seconds);
  log(
    `ingest: ${count} deltas to a published version in ${seconds.toFixed(2)} s (${rate}/s, ${versions} versions)`,
  );
  return [
    {
      name: "ingest_throughput",
      value: rate,
      unit: "deltas/s",
      target: "≥ 100000 deltas/s",
      conditions:
        `${count} JSON deltas (60% full upserts of 5 features incl. float32[8], 30% partial, 10% deletes) over ${keys} keys, ` +
        `${PARTITIONS} partitions, a backlog consumed from the earliest offset until a published version holds the last one ` +
        `(from start-up, including the consumer's join); publish every ${base.ingestPublishIntervalMs} ms ` +
        `(${Math.max(base.ingestPublishIntervalMs, CATCH_UP_PUBLISH_INTERVAL_MS)} ms while catching up) or ` +
        `${base.ingestPublishMaxRows} keys, compaction at ${base.ingestCompactMaxDeltas} deltas or ratio ` +
        `${base.ingestCompactDeltaRatio}; ${versions} versions published; kafkajs 2.2.4; broker on the same machine`,
    },
  ];
}

async function freshness(
  opts: { quick: boolean },
  base: Config,
  root: string,
  topic: string,
): Promise<Metric[]> {
  const ratePerSecond = 10_000;
  const seconds = opts.quick ? 4 : 10;
  const tickMs = 10;
  const dataDir = join(root, "freshness");
  const store = new TableStore(dataDir, "bench_fresh");
  const cache = new MappedSegmentCache();
  const sentAt = new Map<string, number>();
  const latencies: number[] = [];
  const onPublished = (_t: string, version: number): void => {
    const now = performance.now();
    const snapshot = openSnapshot(store, cache, version, { verify: false });
    for (const [key, t] of sentAt) {
      if (snapshot.locate(key).status === "found") {
        latencies.push(now - t);
        sentAt.delete(key);
      }
    }
  };
  const ingest = await startIngest({
    config: configFor(base, dataDir),
    tables: tablesFor("bench_fresh", topic),
    onPublished,
  });
  const producer = new KafkaDeltaProducer(kafkaClientOptions(base, "strata-bench-steady"));
  let sent = 0;
  try {
    // Warm the producer's connection and the ingestor's subscription first.
    await producer.send(topic, [
      { key: "warm-up", value: JSON.stringify({ op: "upsert", key: "warm-up", features: { age: 1 } }) },
    ]);
    while (store.currentVersion() === null) await new Promise((r) => setTimeout(r, 10));
    log(`ingest: producing ${ratePerSecond} deltas/s for ${seconds} s`);
    const started = performance.now();
    const total = ratePerSecond * seconds;
    while (sent < total) {
      const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * ratePerSecond));
      if (due > sent) {
        const t = performance.now();
        const messages: OutgoingMessage[] = [];
        for (let i = sent; i < due; i++) {
          const key = `fresh:${i}`;
          sentAt.set(key, t);
          messages.push({
            key,
            value: JSON.stringify({
              op: "upsert",
              key,
              features: { age: i, emb: EMB },
              event_time_ms: Date.now(),
            }),
          });
        }
        await producer.send(topic, messages);
        sent = due;
      }
      await new Promise((r) => setTimeout(r, tickMs));
    }
    const achieved = sent / ((performance.now() - started) / 1000);
    const deadline = performance.now() + 30_000;
    while (sentAt.size > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    if (sentAt.size > 0)
      throw new Error(`${sentAt.size} deltas were not visible 30 s after the stream ended`);
    const p50 = round(percentile(latencies, 50), 1);
    const p99 = round(percentile(latencies, 99), 1);
    log(
      `ingest: freshness at ${Math.round(achieved)} deltas/s: p50 ${p50} ms, p99 ${p99} ms over ${latencies.length} deltas`,
    );
    const conditions =
      `${sent} upserts produced at ${Math.round(achieved)} deltas/s for ${seconds} s (batches every ${tickMs} ms, acks=all) ` +
      `while ingest runs in the same process; from the start of the produce call to the publish of a version in which ` +
      `openSnapshot finds the key; publish interval ${base.ingestPublishIntervalMs} ms`;
    return [
      { name: "ingest_freshness_p50", value: p50, unit: "ms", conditions },
      {
        name: "ingest_freshness_p99",
        value: p99,
        unit: "ms",
        target: "≤ 1000 ms at 10000 deltas/s",
        conditions,
      },
    ];
  } finally {
    await producer.close();
    await ingest.stop();
  }
}
