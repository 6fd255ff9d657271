// `strata produce <table> <file>` against the real broker: a valid JSONL file lands in the table's
// topic with each event's key as the message key; a file with an invalid line sends nothing and
// exits 7, naming the line and the reason.
import { spawnSync } from "node:child_process";
import { gzipSync } from "node:zlib";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Admin } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildEntry, type BuiltEntry } from "../helpers/build-entry.js";
import { kafkaBrokers } from "../helpers/services.js";
import { connectAdmin, createTopic, endOffsets, uniqueName } from "../helpers/ingest-kafka.js";

describe("strata produce", () => {
  const topic = uniqueName("strata-it-produce");
  let admin: Admin;
  let root: string;
  let cli: BuiltEntry;

  beforeAll(async () => {
    cli = buildEntry("cli/main.ts");
    admin = await connectAdmin();
    await createTopic(admin, topic, 2);
    root = mkdtempSync(join(tmpdir(), "strata-it-produce-"));
    writeFileSync(
      join(root, "strata.tables.json"),
      JSON.stringify({
        tables: [{ name: "users", key: "user_id", topic, features: [{ name: "age", type: "int64" }] }],
      }),
    );
  });
  afterAll(async () => {
    await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await admin.disconnect();
    rmSync(root, { recursive: true, force: true });
    cli?.remove();
  });

  const produce = (file: string, ...flags: string[]) =>
    spawnSync(
      process.execPath,
      [
        cli.path,
        "--data-dir",
        join(root, "data"),
        "--config",
        join(root, "strata.tables.json"),
        "--json",
        "produce",
        "users",
        file,
        ...flags,
      ],
      {
        encoding: "utf8",
        env: { ...process.env, STRATA_KAFKA_BROKERS: kafkaBrokers().join(",") },
        timeout: 60_000,
      },
    );
  const total = async () => Object.values(await endOffsets(admin, topic)).reduce((n, o) => n + Number(o), 0);

  it("sends every line of a valid file, keyed by the event's key", async () => {
    const file = join(root, "good.jsonl");
    const lines = Array.from({ length: 500 }, (_, i) =>
      JSON.stringify({ op: "upsert", key: `u${i}`, features: { age: i } }),
    );
    writeFileSync(file, lines.join("\n") + "\n\n");
    const r = produce(file);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ table: "users", topic, sent: 500 });
    expect(await total()).toBe(500);
    // kcat -C: every message's key is its event's key.
    const read = spawnSync(
      "kcat",
      ["-C", "-b", kafkaBrokers().join(","), "-t", topic, "-e", "-q", "-f", "%k\\t%s\\n"],
      { encoding: "utf8", timeout: 30_000 },
    );
    const messages = read.stdout.trim().split("\n");
    expect(messages).toHaveLength(500);
    for (const m of messages) {
      const [key, value] = m.split("\t");
      expect(key).toBe((JSON.parse(value!) as { key: string }).key);
    }
  });

  it("sends a gzip-compressed file as the plain one, and refuses standard input", async () => {
    const before = await total();
    const file = join(root, "good.jsonl.gz");
    const lines = Array.from({ length: 50 }, (_, i) =>
      JSON.stringify({ op: "upsert", key: `z${i}`, features: { age: i } }),
    );
    writeFileSync(file, gzipSync(lines.join("\n") + "\n"));
    const r = produce(file);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ sent: 50 });
    expect(await total()).toBe(before + 50);
    const stdin = produce("-");
    expect(stdin.status).toBe(7);
    expect(stdin.stderr).toContain("give a path, not -");
  });

  it("refuses a file with an invalid line, sending nothing, unless --no-validate", async () => {
    const before = await total();
    const file = join(root, "bad.jsonl");
    writeFileSync(
      file,
      [
        JSON.stringify({ op: "upsert", key: "a", features: { age: 1 } }),
        JSON.stringify({ op: "upsert", key: "b", features: { age: "old" } }),
        "{nope",
      ].join("\n"),
    );
    const r = produce(file);
    expect(r.status).toBe(7);
    const error = (JSON.parse(r.stderr) as { error: { code: string; message: string } }).error;
    expect(error.code).toBe("STRATA_DELTA_INVALID");
    expect(error.message).toMatch(/2 invalid lines, nothing was sent/);
    expect(error.message).toMatch(
      /line 2: Feature "age" \(int64\): expected an integer or a decimal string, got "old"/,
    );
    expect(error.message).toMatch(/line 3: Value is not valid JSON/);
    expect(await total()).toBe(before);
    const forced = produce(file, "--no-validate");
    expect(forced.status, forced.stderr).toBe(0);
    expect(await total()).toBe(before + 3);
  });
});
