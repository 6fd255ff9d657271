// Helpers of the ingest integration tests: topics on the real broker, producing files of deltas
// with Debian's kcat (librdkafka, not kafkajs), an independent model of what a stream of delta
// events leaves in a table, and checks of the published versions against it.
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kafka, logLevel, type Admin } from "kafkajs";
import { afterAll, beforeAll, expect } from "vitest";
import type { TableSchema } from "../../src/format/schema.js";
import type { Logger } from "../../src/shared/logger.js";
import { featureKinds } from "../../src/format/schema.js";
import { featureValueToJson, type JsonValue } from "../../src/format/value-json.js";
import { MappedSegmentCache } from "../../src/storage/mapped-segment.js";
import type { TableStore } from "../../src/storage/table-store.js";
import { openSnapshot } from "../../src/storage/version-snapshot.js";
import type { Ingest } from "../../src/ingest/start-ingest.js";
import { kafkaBrokers } from "./services.js";
import { prng } from "./prng.js";

export const uniqueName = (prefix: string): string => `${prefix}-${Date.now()}-${randomUUID().slice(0, 8)}`;

export async function connectAdmin(brokers = kafkaBrokers()): Promise<Admin> {
  const kafka = new Kafka({
    clientId: "strata-it-admin",
    brokers,
    logLevel: logLevel.NOTHING,
    retry: { retries: 5 },
  });
  const admin = kafka.admin();
  await admin.connect();
  return admin;
}

export async function createTopic(admin: Admin, topic: string, partitions: number): Promise<void> {
  await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: partitions }] });
}

/** What {@link ingestTestBed} makes for a test file; `admin` and `root` are set before its tests. */
export interface IngestTestBed {
  readonly topic: string;
  admin: Admin;
  root: string;
  /** The ingest a test started: stopped before the topic and data dir are removed. */
  ingest: Ingest | null;
}

/**
 * One test file's topic on the real broker (`partitions` of them) and its temp data dir, made
 * before its tests and removed after them with the topic's dead-letter topic.
 */
export function ingestTestBed(name: string, partitions: number): IngestTestBed {
  const bed: IngestTestBed = { topic: uniqueName(`strata-it-${name}`), admin: null!, root: "", ingest: null };
  beforeAll(async () => {
    bed.admin = await connectAdmin();
    await createTopic(bed.admin, bed.topic, partitions);
    bed.root = mkdtempSync(join(tmpdir(), `strata-it-${name}-`));
  });
  afterAll(async () => {
    await bed.ingest?.stop();
    await bed.admin.deleteTopics({ topics: [bed.topic, `${bed.topic}.dlq`] }).catch(() => undefined);
    await bed.admin.disconnect();
    rmSync(bed.root, { recursive: true, force: true });
  });
  return bed;
}

/** Partition → high watermark (the next offset), as decimal strings. */
export async function endOffsets(admin: Admin, topic: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const o of await admin.fetchTopicOffsets(topic)) out[String(o.partition)] = o.high;
  return out;
}

/**
 * Sends `lines` ("key<TAB>value") with kcat, one message per line, keys placed on partitions like
 * the Java client and kafkajs place them (murmur2).
 */
export async function kcatProduce(
  topic: string,
  lines: readonly string[],
  file: string,
  brokers = kafkaBrokers(),
): Promise<void> {
  writeFileSync(file, lines.map((l) => l + "\n").join(""));
  const args = [
    "-P",
    "-b",
    brokers.join(","),
    "-t",
    topic,
    "-K\t",
    "-X",
    "partitioner=murmur2_random",
    "-X",
    "message.timeout.ms=30000",
    "-l",
    file,
  ];
  await new Promise<void>((resolve, reject) => {
    const child = spawn("kcat", args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    child.on("error", reject);
    child.on("close", (code, signal) => {
      if (code === 0 && !/fail|error/i.test(stderr)) resolve();
      else reject(new Error(`kcat ${args.join(" ")} exited with ${signal ?? code}: ${stderr.trim()}`));
    });
  });
}

/** Polls `check`; on timeout the error carries `state()` (e.g. the ingest status), for CI logs. */
export async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  state?: () => unknown,
  everyMs = 50,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) {
      const detail = state ? `; state: ${JSON.stringify(state(), null, 1)}` : "";
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * A logger for in-process ingest in tests: warnings and errors go to stderr (they explain a
 * failure), the rest is dropped. STRATA_IT_LOG=debug shows everything.
 */
export function testLogger(name: string): Logger {
  const verbose = process.env.STRATA_IT_LOG === "debug";
  const write = (level: string) => (obj: object, msg?: string) =>
    process.stderr.write(
      `[${name}] ${level} ${msg ?? ""} ${JSON.stringify(obj, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v))}\n`,
    );
  const quiet = (): void => undefined;
  const logger: Logger = {
    debug: verbose ? write("debug") : quiet,
    info: verbose ? write("info") : quiet,
    warn: write("warn"),
    error: write("error"),
    child: () => logger,
  };
  return logger;
}

/** The Kafka offsets of the table's current version, or null before any. */
export function publishedOffsets(store: TableStore): Record<string, string> | null {
  const v = store.currentVersion();
  if (v === null) return null;
  return store.readManifest(v).manifest.kafka?.offsets ?? null;
}

export function offsetsReached(store: TableStore, end: Record<string, string>): boolean {
  const got = publishedOffsets(store);
  if (!got) return false;
  return Object.entries(end).every(([p, o]) => BigInt(got[p] ?? "0") >= BigInt(o));
}

/**
 * Every retained version's offsets, in version order, never go back on a partition (and a
 * partition, once recorded, stays): what a double application after a crash would break.
 */
export function expectOffsetsOnlyIncrease(store: TableStore): number {
  const seen = new Map<string, bigint>();
  const versions = store.listVersions();
  for (const v of versions) {
    const { manifest } = store.readManifest(v);
    const offsets = manifest.kafka?.offsets ?? {};
    for (const [p, last] of seen) {
      expect(offsets[p], `v${v} (${manifest.reason}) lost partition ${p}`).toBeDefined();
      expect(
        BigInt(offsets[p]!) >= last,
        `v${v} (${manifest.reason}) partition ${p}: ${offsets[p]} < ${last}`,
      ).toBe(true);
    }
    for (const [p, o] of Object.entries(offsets)) seen.set(p, BigInt(o));
  }
  return versions.length;
}

// ---------------------------------------------------------------------------------------------
// The model: what a stream of delta events leaves, computed from the file's lines in order,
// without any of the ingest code. Values are compared as JSON.

export interface ModelRow {
  values: Record<string, JsonValue>;
  eventTimeMs: number;
}

export class DeltaModel {
  /** Key → its row, or null once deleted. */
  readonly rows = new Map<string, ModelRow | null>();

  apply(key: string, json: string): void {
    const event = JSON.parse(json) as {
      op: string;
      features?: Record<string, JsonValue>;
      event_time_ms?: number;
    };
    if (event.op === "delete") {
      this.rows.set(key, null);
      return;
    }
    const before = this.rows.get(key);
    const values = before ? { ...before.values } : {};
    for (const [name, v] of Object.entries(event.features ?? {})) values[name] = v;
    this.rows.set(key, { values, eventTimeMs: event.event_time_ms! });
  }

  get liveRows(): number {
    let n = 0;
    for (const r of this.rows.values()) if (r) n++;
    return n;
  }
}

/** The table's current version holds exactly the model: every key, value and event time, and no other row. */
export function expectStoreMatchesModel(store: TableStore, schema: TableSchema, model: DeltaModel): void {
  const snapshot = openSnapshot(store, new MappedSegmentCache(), store.requireCurrentVersion(), {
    verify: true,
    schema,
  });
  const kinds = featureKinds(schema);
  let mismatches = 0;
  for (const [key, want] of model.rows) {
    const got = snapshot.get(key);
    if (want === null) {
      if (got.status !== "absent" && mismatches++ < 5)
        expect.fail(`${key}: expected absent, got ${got.status}`);
      continue;
    }
    if (got.status !== "found") {
      if (mismatches++ < 5) expect.fail(`${key}: expected found, got ${got.status}`);
      continue;
    }
    const actual: Record<string, JsonValue> = {};
    const expected: Record<string, JsonValue> = {};
    schema.features.forEach((f, i) => {
      actual[f.name] = featureValueToJson(kinds[i]!, got.values![i]!);
      expected[f.name] = want.values[f.name] ?? null;
    });
    expect(actual, key).toEqual(expected);
    expect(got.eventTimeMs, `${key} event time`).toBe(want.eventTimeMs);
  }
  let live = 0;
  for (const { location } of snapshot.scan()) {
    expect(location.status).toBe("found");
    live++;
  }
  expect(live, "rows in the version").toBe(model.liveRows);
}

// ---------------------------------------------------------------------------------------------
// Generated streams

export const TEST_FEATURES = [
  { name: "age", type: "int64" },
  { name: "score", type: "float64" },
  { name: "city", type: "string" },
  { name: "active", type: "bool" },
  { name: "emb", type: "float32[4]" },
] as const;

export { prng };

/**
 * `count` delta lines ("key<TAB>json") over `keys` keys: full upserts, partial upserts (some with
 * nulls) and deletes, event times increasing from `firstEventTimeMs`. Values are exact in their
 * types (float32 elements are multiples of 1/4), so JSON comparison is exact.
 */
export function generateDeltas(
  count: number,
  keys: number,
  seed: number,
  firstEventTimeMs = 1_700_000_000_000,
): string[] {
  const random = prng(seed);
  const int = (n: number) => Math.floor(random() * n);
  const value = (name: string): JsonValue => {
    if (random() < 0.05) return null;
    switch (name) {
      case "age":
        return int(100_000) - 50_000;
      case "score":
        return int(1_000_000) / 64;
      case "city":
        return `city-${int(500)}-é`;
      case "active":
        return random() < 0.5;
      default:
        return [int(64) / 4, -int(64) / 4, int(8), 0.5];
    }
  };
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    const key = `user:${int(keys)}`;
    const dice = random();
    const eventTime = firstEventTimeMs + i;
    let event: unknown;
    if (dice < 0.15) event = { op: "delete", key, event_time_ms: eventTime };
    else {
      const names =
        dice < 0.7
          ? TEST_FEATURES.map((f) => f.name)
          : TEST_FEATURES.map((f) => f.name).filter(() => random() < 0.4);
      if (names.length === 0) names.push("age");
      const features: Record<string, JsonValue> = {};
      for (const n of names) features[n] = value(n);
      event = { op: "upsert", key, features, event_time_ms: eventTime };
    }
    lines.push(`${key}\t${JSON.stringify(event)}`);
  }
  return lines;
}

/** Applies "key<TAB>json" lines to a model, in order. */
export function applyLines(model: DeltaModel, lines: readonly string[]): void {
  for (const line of lines) {
    const tab = line.indexOf("\t");
    model.apply(line.slice(0, tab), line.slice(tab + 1));
  }
}
