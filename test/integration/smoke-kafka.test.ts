// Smoke test of the local Kafka broker (scripts/services.sh): kafkajs produces and consumes keyed
// messages, and a message produced by librdkafka's kcat reaches kafkajs intact, on the partition
// kafkajs's own (Java-compatible murmur2) partitioner picks for the same key.
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { Kafka, logLevel, Partitioners, type Admin, type Consumer, type Producer } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kafkaBrokers } from "../helpers/services.js";

const PARTITIONS = 3;
const runId = `${Date.now()}-${randomUUID().slice(0, 8)}`;
const topicKafkajs = `strata-smoke-${runId}-kafkajs`;
const topicKcat = `strata-smoke-${runId}-kcat`;

interface Received {
  partition: number;
  offset: string;
  key: string | null;
  value: string | null;
}

let kafka: Kafka;
let admin: Admin | undefined;
let producer: Producer | undefined;
const consumers: Consumer[] = [];

beforeAll(async () => {
  kafka = new Kafka({
    clientId: `strata-smoke-${runId}`,
    brokers: kafkaBrokers(),
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3_000,
    // Fail in seconds, not minutes, when the broker is not there.
    retry: { retries: 3, initialRetryTime: 300, maxRetryTime: 3_000 },
  });
  admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({
    waitForLeaders: true,
    topics: [topicKafkajs, topicKcat].map((topic) => ({ topic, numPartitions: PARTITIONS })),
  });
  producer = kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    allowAutoTopicCreation: false,
  });
  await producer.connect();
});

afterAll(async () => {
  await Promise.allSettled(consumers.map((c) => c.disconnect()));
  await producer?.disconnect();
  if (admin) {
    await admin.deleteTopics({ topics: [topicKafkajs, topicKcat] }).catch(() => undefined);
    await admin.disconnect();
  }
});

/** Consumes `topic` from the beginning with a fresh group until `count` messages have arrived. */
async function consume(topic: string, count: number, timeoutMs = 60_000): Promise<Received[]> {
  const consumer = kafka.consumer({ groupId: `strata-smoke-${runId}-${topic}`, maxWaitTimeInMs: 200 });
  consumers.push(consumer);
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const received: Received[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `consumed ${received.length} of ${count} messages from ${topic} within ${timeoutMs} ms`,
            ),
          ),
        timeoutMs,
      );
      consumer.on(consumer.events.CRASH, (event) => {
        clearTimeout(timer);
        reject(event.payload.error);
      });
      consumer
        .run({
          eachMessage: async ({ partition, message }) => {
            received.push({
              partition,
              offset: message.offset,
              key: message.key?.toString("utf8") ?? null,
              value: message.value?.toString("utf8") ?? null,
            });
            if (received.length >= count) {
              clearTimeout(timer);
              resolve();
            }
          },
        })
        .catch((err: unknown) => {
          clearTimeout(timer);
          reject(err instanceof Error ? err : new Error(String(err)));
        });
    });
  } finally {
    await consumer.disconnect();
  }
  return received;
}

/** Runs `kcat -P` with `lines` on stdin (one `key:value` message per line). */
function kcatProduce(topic: string, lines: string[]): Promise<void> {
  const broker = kafkaBrokers().join(",");
  const args = ["-P", "-b", broker, "-t", topic, "-K:", "-X", "partitioner=murmur2_random"];
  // Give up after 30 s instead of librdkafka's default of 5 minutes when the broker is away.
  args.push("-X", "message.timeout.ms=30000");
  return new Promise((resolve, reject) => {
    const child = spawn("kcat", args, { stdio: ["pipe", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.on("error", (err: NodeJS.ErrnoException) => {
      reject(
        err.code === "ENOENT"
          ? new Error(
              "kcat is not installed: run 'scripts/services.sh up' as root or 'apt-get install -y kcat'",
            )
          : err,
      );
    });
    child.on("close", (code, signal) => {
      if (code === 0 && !/fail|error/i.test(stderr)) resolve();
      else reject(new Error(`kcat ${args.join(" ")} exited with ${signal ?? code}: ${stderr.trim()}`));
    });
    child.stdin.end(lines.map((l) => `${l}\n`).join(""));
  });
}

function byPartitionAndOffset(a: Received, b: Received): number {
  return a.partition - b.partition || Number(BigInt(a.offset) - BigInt(b.offset));
}

describe("local Kafka broker", () => {
  it("carries keyed messages from a kafkajs producer to a kafkajs consumer, in order per key", async () => {
    const sent = [
      { key: "user:1", value: "v1" },
      { key: "user:2", value: "v1" },
      { key: "user:1", value: "v2" },
      { key: "user:3", value: JSON.stringify({ clicks: 7, ctr: 0.25 }) },
      { key: "user:1", value: "v3" },
    ];
    const metadata = await producer!.send({ topic: topicKafkajs, acks: -1, messages: sent });
    expect(metadata.every((m) => m.errorCode === 0)).toBe(true);

    const received = (await consume(topicKafkajs, sent.length)).sort(byPartitionAndOffset);
    expect(received).toHaveLength(sent.length);
    expect(received.map((r) => `${r.key}=${r.value}`).sort()).toEqual(
      sent.map((m) => `${m.key}=${m.value}`).sort(),
    );
    // Messages of one key share a partition and keep their order.
    const user1 = received.filter((r) => r.key === "user:1");
    expect(new Set(user1.map((r) => r.partition)).size).toBe(1);
    expect(user1.map((r) => r.value)).toEqual(["v1", "v2", "v3"]);
  });

  it("delivers messages produced by kcat to kafkajs with their key and value, on kafkajs's partition", async () => {
    const keys = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"];
    // The value holds the delimiter too: kcat splits on the first ':' only.
    await kcatProduce(
      topicKcat,
      keys.map((k) => `${k}:{"from":"kcat","key":"${k}"}`),
    );
    // The same keys through kafkajs's default partitioner, into the same topic.
    await producer!.send({
      topic: topicKcat,
      acks: -1,
      messages: keys.map((key) => ({ key, value: "kafkajs" })),
    });

    const received = await consume(topicKcat, keys.length * 2);
    const fromKcat = received.filter((r) => r.value !== "kafkajs");
    const fromKafkajs = received.filter((r) => r.value === "kafkajs");
    expect(fromKcat.map((r) => r.key).sort()).toEqual([...keys].sort());
    for (const r of fromKcat) {
      expect(JSON.parse(r.value ?? "null")).toEqual({ from: "kcat", key: r.key });
      const twin = fromKafkajs.find((k) => k.key === r.key);
      expect(twin, `kafkajs message for key ${r.key}`).toBeDefined();
      expect(r.partition, `partition of key ${r.key}: kcat vs kafkajs`).toBe(twin!.partition);
    }
    // The keys spread over more than one partition, so the comparison above means something.
    expect(new Set(fromKcat.map((r) => r.partition)).size).toBeGreaterThan(1);
  });
});
