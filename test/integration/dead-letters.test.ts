// `strata dead-letters` against the real broker: list what ingest refused, then, once the config
// has the feature the producer was already sending, replay what is valid now. A replay sends each
// refused delta once, skips one whose key has a newer stored row, and leaves the still-invalid
// ones where they are.
import { join } from "node:path";
import { writeFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/config.js";
import { parseTablesConfig } from "../../src/config/tables-config.js";
import { TableStore } from "../../src/storage/table-store.js";
import { VersionWriter } from "../../src/storage/version-writer.js";
import { MappedSegmentCache } from "../../src/storage/mapped-segment.js";
import { openSnapshot } from "../../src/storage/version-snapshot.js";
import { startIngest } from "../../src/ingest/start-ingest.js";
import { kafkaBrokers } from "../helpers/services.js";
import { CLI, runCommand } from "../helpers/cli.js";
import {
  endOffsets,
  ingestTestBed,
  kcatProduce,
  offsetsReached,
  testLogger,
  until,
} from "../helpers/ingest-kafka.js";

describe("strata dead-letters", () => {
  const bed = ingestTestBed("dead-letters", 2);

  it("lists the refused deltas, and replays the ones the new config accepts", async () => {
    const { topic, root } = bed;
    const tables = (features: object[]) => ({ tables: [{ name: "users", key: "user_id", topic, features }] });
    const before = tables([{ name: "age", type: "int64" }]);
    const after = tables([
      { name: "age", type: "int64" },
      { name: "score", type: "float64" },
    ]);
    writeFileSync(join(root, "before.json"), JSON.stringify(before));
    writeFileSync(join(root, "after.json"), JSON.stringify(after));
    const strata = (config: string, ...args: string[]) =>
      runCommand("node", [CLI, "--data-dir", root, "--config", join(root, config), "--json", ...args], {
        env: { ...process.env, STRATA_KAFKA_BROKERS: kafkaBrokers().join(",") },
      });

    const store = new TableStore(root, "users");
    const ingestWith = async (config: object) =>
      (bed.ingest = await startIngest({
        config: loadConfig(
          { dataDir: root, kafkaBrokers: kafkaBrokers().join(",") },
          { STRATA_INGEST_PUBLISH_INTERVAL_MS: "50" },
        ),
        tables: parseTablesConfig(config),
        logger: testLogger("dead-letters"),
      }));
    const event = (key: string, t: number, features: object) =>
      `${key}\t${JSON.stringify({ op: "upsert", key, event_time_ms: t, features })}`;

    // The producer sends `score` before the config has it.
    let ingest = await ingestWith(before);
    await kcatProduce(
      topic,
      [
        event("u1", 1000, { age: 10 }),
        event("u2", 1000, { age: 20, score: 0.5 }),
        event("u3", 1000, { age: "x" }),
        event("u1", 900, { age: 11, score: 1.5 }), // late: u1 has a newer row by then
        event("u4", 1000, { age: 40, score: 4.5 }),
      ],
      join(root, "a.tsv"),
    );
    const end = await endOffsets(bed.admin, topic);
    await until(
      "ingest read everything",
      () => offsetsReached(store, end),
      20_000,
      () => ingest.status("users"),
    );
    await ingest.stop();
    bed.ingest = null;

    const listed = await strata("before.json", "dead-letters", "users");
    expect(listed.code, listed.stderr).toBe(0);
    const list = JSON.parse(listed.stdout);
    expect(list).toMatchObject({ total: 4, by_kind: { unknown_feature: 3, wrong_type: 1 } });
    expect(list.dead_letters.map((d: { key: string }) => d.key).sort()).toEqual(["u1", "u2", "u3", "u4"]);
    const u3 = list.dead_letters.find((d: { key: string }) => d.key === "u3");
    expect(u3.reason).toMatch(/Feature "age" \(int64\)/);
    expect(u3.source).toMatch(new RegExp(`^${topic}/\\d/\\d+$`));
    const wrong = JSON.parse(
      (await strata("before.json", "dead-letters", "users", "--kind", "wrong_type")).stdout,
    );
    expect(wrong.dead_letters.map((d: { key: string }) => d.key)).toEqual(["u3"]);

    // The config gains `score`; compact rewrites the table in it; the replay sends u2 and u4.
    new VersionWriter(store, parseTablesConfig(after).tables[0]!).compact();
    const dry = JSON.parse(
      (await strata("after.json", "dead-letters", "users", "--replay", "--dry-run")).stdout,
    );
    expect(dry).toMatchObject({ dry_run: true, selected: 4, sent: 2, still_invalid: 1, stale: 1 });
    const replayed = await strata("after.json", "dead-letters", "users", "--replay");
    expect(replayed.code, replayed.stderr).toBe(0);
    expect(JSON.parse(replayed.stdout)).toMatchObject({
      dry_run: false,
      sent: 2,
      still_invalid: 1,
      stale: 1,
    });

    const replayedEnd = await endOffsets(bed.admin, topic);
    ingest = await ingestWith(after);
    await until(
      "ingest applied the replay",
      () => offsetsReached(store, replayedEnd),
      20_000,
      () => ingest.status("users"),
    );
    const snap = openSnapshot(store, new MappedSegmentCache(), store.requireCurrentVersion(), {
      verify: true,
      schema: parseTablesConfig(after).tables[0]!,
    });
    expect(snap.get("u1").values).toEqual([10n, null]); // the late delta was not applied over it
    expect(snap.get("u2").values).toEqual([20n, 0.5]);
    expect(snap.get("u3").status).toBe("absent");
    expect(snap.get("u4").values).toEqual([40n, 4.5]);
    expect(snap.get("u4").eventTimeMs).toBe(1000);
  }, 90_000);
});
