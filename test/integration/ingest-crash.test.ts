// Done-means of issue 5, against the real broker: the ingestor runs in a child process and is
// killed with SIGKILL at random moments while kcat streams deltas in; then one last run catches
// up. The final state equals the model (nothing lost, nothing applied out of order twice), every
// version's offsets only go forward, and every version left behind opens and verifies.
//
// STRATA_IT_INGEST_KILLS sets the number of kills (default 20, the figure), and
// STRATA_IT_INGEST_SEED the seed of the stream and of the kill times.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Admin } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseTablesConfig } from "../../src/config/tables-config.js";
import { MappedSegmentCache } from "../../src/storage/mapped-segment.js";
import { TableStore } from "../../src/storage/table-store.js";
import { openSnapshot } from "../../src/storage/version-snapshot.js";
import { buildEntry, type BuiltEntry } from "../helpers/build-entry.js";
import { kafkaBrokers } from "../helpers/services.js";
import {
  DeltaModel,
  TEST_FEATURES,
  applyLines,
  connectAdmin,
  createTopic,
  endOffsets,
  expectOffsetsOnlyIncrease,
  expectStoreMatchesModel,
  generateDeltas,
  kcatProduce,
  offsetsReached,
  prng,
  publishedOffsets,
  uniqueName,
  until,
} from "../helpers/ingest-kafka.js";

const KILLS = Number(process.env.STRATA_IT_INGEST_KILLS ?? 20);
const SEED = Number(process.env.STRATA_IT_INGEST_SEED ?? 5);
const PARTITIONS = 3;
/** The stream: a chunk every CHUNK_EVERY_MS for as long as the kills go on (at most MAX_CHUNKS). */
const MAX_CHUNKS = 200;
const CHUNK_DELTAS = 1_000;
const CHUNK_EVERY_MS = 250;

describe("ingest killed with SIGKILL at random moments", () => {
  const topic = uniqueName("strata-it-ingest-crash");
  let admin: Admin;
  let root: string;
  let entry: BuiltEntry;
  const children = new Set<ChildProcess>();
  let logsForDebug: string[] = [];

  beforeAll(() => {
    entry = buildEntry("ingest/ingest-main.ts");
  });
  beforeAll(async () => {
    admin = await connectAdmin();
    await createTopic(admin, topic, PARTITIONS);
    root = mkdtempSync(join(tmpdir(), "strata-it-crash-"));
  });
  afterAll(async () => {
    if (process.env.STRATA_IT_LOG)
      writeFileSync(join(tmpdir(), "ingest-crash-children.log"), logsForDebug.join(""));
    for (const c of children) c.kill("SIGKILL");
    await admin.deleteTopics({ topics: [topic, `${topic}.dlq`] }).catch(() => undefined);
    await admin.disconnect();
    rmSync(root, { recursive: true, force: true });
    entry?.remove();
  });

  it(`loses and repeats nothing over ${KILLS} kills during a stream of deltas`, async () => {
    const tables = {
      tables: [{ name: "users", key: "user_id", topic, features: TEST_FEATURES.map((f) => ({ ...f })) }],
    };
    const tablesPath = join(root, "strata.tables.json");
    writeFileSync(tablesPath, JSON.stringify(tables));
    const dataDir = join(root, "data");
    const env = {
      ...process.env,
      STRATA_DATA_DIR: dataDir,
      STRATA_CONFIG: tablesPath,
      STRATA_KAFKA_BROKERS: kafkaBrokers().join(","),
      // Keep every version (to check the offsets of each), publish and compact often (more
      // moments to be killed in).
      STRATA_KEEP_VERSIONS: "100000",
      STRATA_INGEST_PUBLISH_INTERVAL_MS: "40",
      STRATA_INGEST_PUBLISH_MAX_ROWS: "1500",
      STRATA_INGEST_COMPACT_MAX_DELTAS: "6",
    };
    const logs: string[] = [];
    if (process.env.STRATA_IT_LOG) logsForDebug = logs;
    /** Per run: when it started consuming, and how many versions it published. */
    const runs: {
      consuming: Promise<void>;
      publishes: number;
      killedAfterMs?: number;
      duringStartup?: boolean;
    }[] = [];
    const spawnIngestor = (run: number): ChildProcess => {
      const child = spawn(process.execPath, [entry.path], { env, stdio: ["ignore", "ignore", "pipe"] });
      children.add(child);
      let consuming!: () => void;
      const state: (typeof runs)[number] = {
        consuming: new Promise<void>((r) => (consuming = r)),
        publishes: 0,
      };
      runs[run] = state;
      child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
        logs.push(`[run ${run}] ${chunk}`);
        if (chunk.includes('"msg":"Consuming"')) consuming();
        state.publishes += chunk.split('"msg":"published"').length - 1;
      });
      child.on("exit", () => {
        children.delete(child);
        consuming();
      });
      return child;
    };
    const exited = (child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> =>
      child.exitCode !== null || child.signalCode !== null
        ? Promise.resolve({ code: child.exitCode, signal: child.signalCode })
        : new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));

    // The stream: chunks produced with kcat for as long as the ingestor is being killed.
    const pool = generateDeltas(MAX_CHUNKS * CHUNK_DELTAS, 3_000, SEED);
    let produced = 0;
    let killing = true;
    const producing = (async () => {
      for (let c = 0; c < MAX_CHUNKS && (killing || c < 2); c++) {
        await kcatProduce(
          topic,
          pool.slice(c * CHUNK_DELTAS, (c + 1) * CHUNK_DELTAS),
          join(root, `chunk-${c % 4}.tsv`),
        );
        produced++;
        await new Promise((r) => setTimeout(r, CHUNK_EVERY_MS));
      }
    })();

    const store = new TableStore(dataDir, "users");
    const random = prng(SEED * 7919);
    for (let run = 0; run < KILLS; run++) {
      const child = spawnIngestor(run);
      // One kill in five during start-up; the others at a random moment of consumption, when
      // publishes (every 40 ms), compactions and retention are under way.
      if (random() < 0.2) {
        runs[run]!.duringStartup = true;
        await new Promise((r) => setTimeout(r, Math.floor(random() * 400)));
      } else {
        await runs[run]!.consuming;
        runs[run]!.killedAfterMs = 400 + Math.floor(random() * 1_200);
        await new Promise((r) => setTimeout(r, runs[run]!.killedAfterMs));
      }
      child.kill("SIGKILL");
      if (process.env.STRATA_IT_LOG) {
        const when = runs[run]!.duringStartup
          ? "during start-up"
          : `${runs[run]!.killedAfterMs} ms after it started consuming`;
        process.stderr.write(
          `[ingest-crash] killed run ${run} ${when}, after ${runs[run]!.publishes} publishes\n`,
        );
      }
      const { signal } = await exited(child); // reaped: its pid is dead, so its locks are stale
      expect(signal, `run ${run} should die by SIGKILL\n${logs.join("")}`).toBe("SIGKILL");
      // Whatever the moment, what is published is whole and consistent.
      expectOffsetsOnlyIncrease(store);
      const current = store.currentVersion();
      if (current !== null) openSnapshot(store, new MappedSegmentCache(), current, { verify: true });
    }
    killing = false;
    await producing;
    if (process.env.STRATA_IT_LOG) process.stderr.write(`[ingest-crash] produced ${produced} chunks\n`);
    const lines = pool.slice(0, produced * CHUNK_DELTAS);

    // One last run catches up and stops cleanly.
    const end = await endOffsets(admin, topic);
    const last = spawnIngestor(KILLS);
    await until(
      "the last run to publish every offset",
      () => offsetsReached(store, end),
      45_000,
      () => ({
        published: publishedOffsets(store),
        end,
        log: logs.slice(-20).join(""),
      }),
    );
    await runs[KILLS]!.consuming; // its SIGTERM handler is in place
    last.kill("SIGTERM");
    const { code } = await exited(last);
    expect(code, logs.slice(-20).join("")).toBe(0);

    const model = new DeltaModel();
    applyLines(model, lines);
    expectStoreMatchesModel(store, parseTablesConfig(tables).tables[0]!, model);
    const versions = expectOffsetsOnlyIncrease(store);
    for (const v of store.listVersions()) openSnapshot(store, new MappedSegmentCache(), v, { verify: true });
    // A clean stop leaves no temp files, and the killed runs' are swept at the next start.
    const leftovers = [store.dir, store.dataDir, store.versionsDir].flatMap((d) =>
      readdirSync(d).filter((n) => n.startsWith(".tmp-")),
    );
    expect(leftovers).toEqual([]);
    expect(readdirSync(store.dir)).not.toContain("writer.lock");
    const killedAfterPublishing = runs.slice(0, KILLS).filter((r) => r.publishes > 0).length;
    const killedWhileConsuming = runs.slice(0, KILLS).filter((r) => !r.duringStartup).length;
    console.log(
      `[ingest-crash] ${KILLS} kills (${killedAfterPublishing} after publishing), ${lines.length} deltas, ` +
        `${versions} versions, ${model.liveRows} live rows; publishes per run: ${runs.map((r) => r.publishes).join(",")}`,
    );
    // Most kills must hit a run that was publishing, or the test proves little.
    expect(killedAfterPublishing).toBeGreaterThanOrEqual(Math.ceil(killedWhileConsuming / 2));
  });
});
