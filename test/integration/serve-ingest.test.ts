/**
 * End to end through the real broker: `strata serve` with STRATA_KAFKA_BROKERS ingests deltas that
 * Debian's kcat produced, and a gRPC client sees exactly the state a model computes from the same
 * events; DescribeTable reports ingest freshness.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { kafkaBrokers } from "../helpers/services.js";
import { createStrataClient, type StrataClient } from "../../src/client/index.js";
import { freePort } from "../helpers/free-port.js";

const CLI = resolve("dist/cli/main.js");
const N = Number(process.env.STRATA_E2E_DELTAS ?? 100_000);
const KEYS = 2_000;

describe("serve + ingest", () => {
  let dir: string;
  let server: ChildProcess;
  let client: StrataClient;
  const topic = `strata.e2e.${process.pid}.${Date.now()}`;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "strata-e2e-"));
    writeFileSync(
      join(dir, "tables.json"),
      JSON.stringify({
        tables: [
          {
            name: "users",
            key: "id",
            topic,
            features: [
              { name: "n", type: "int64" },
              { name: "tag", type: "string" },
            ],
          },
        ],
      }),
    );
    const port = await freePort();
    server = spawn(
      "node",
      [
        CLI,
        "--data-dir",
        join(dir, "data"),
        "--config",
        join(dir, "tables.json"),
        "serve",
        "--port",
        String(port),
        "--metrics-port",
        "off",
      ],
      {
        // One host: the global setup exports the test Redis to children, which would make this
        // server join a fleet (docs/fleet.md); "" is unset.
        env: { ...process.env, STRATA_KAFKA_BROKERS: kafkaBrokers().join(","), STRATA_REDIS_URL: "" },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let log = "";
    server.stderr!.on("data", (d: Buffer) => (log += d));
    await new Promise<void>((res, rej) => {
      server.stdout!.on("data", (d: Buffer) => d.toString().includes("serving") && res());
      server.on("exit", (code) => rej(new Error(`serve exited ${code}: ${log}`)));
    });
    client = createStrataClient(`127.0.0.1:${port}`);
  }, 60_000);

  afterAll(async () => {
    client?.close();
    server?.kill("SIGTERM");
    await new Promise((r) => (server?.exitCode !== null ? r(null) : server.once("exit", r)));
    rmSync(dir, { recursive: true, force: true });
  });

  it("serves exactly the model of kcat-produced upserts, partial upserts and deletes", async () => {
    const model = new Map<string, { n: number | null; tag: string | null }>();
    const lines: string[] = [];
    for (let i = 0; i < N; i++) {
      const key = `u${(i * 7919) % KEYS}`;
      const r = i % 10;
      let event: object;
      if (r === 9) {
        event = { op: "delete", key };
        model.delete(key);
      } else if (r % 3 === 0) {
        event = { op: "upsert", key, features: { tag: `t${i}` } };
        model.set(key, { n: model.get(key)?.n ?? null, tag: `t${i}` });
      } else {
        event = { op: "upsert", key, features: { n: i, tag: `t${i}` }, event_time_ms: 1_700_000_000_000 + i };
        model.set(key, { n: i, tag: `t${i}` });
      }
      lines.push(`${key}\t${JSON.stringify(event)}`);
    }
    const file = join(dir, "deltas.txt");
    writeFileSync(file, lines.join("\n") + "\n");
    execFileSync(
      "kcat",
      ["-P", "-b", kafkaBrokers()[0]!, "-t", topic, "-K\t", "-X", "partitioner=murmur2_random", "-l", file],
      { timeout: 60_000 },
    );

    const keys = Array.from({ length: KEYS }, (_, i) => `u${i}`);
    const deadline = Date.now() + 60_000;
    let mismatches: string[] = ["not checked"];
    while (mismatches.length > 0 && Date.now() < deadline) {
      mismatches = [];
      for (let b = 0; b < keys.length; b += 500) {
        const res = await client
          .getFeatures({ table: "users", keys: keys.slice(b, b + 500) })
          .catch(() => null);
        if (!res) {
          mismatches.push("no version yet");
          break;
        }
        for (const row of res.rows) {
          const want = model.get(row.key);
          const got =
            row.status === "ROW_STATUS_FOUND"
              ? { n: row.values[0] === null ? null : Number(row.values[0]), tag: row.values[1] }
              : undefined;
          if (JSON.stringify(got) !== JSON.stringify(want))
            mismatches.push(`${row.key}: ${JSON.stringify(got)} != ${JSON.stringify(want)}`);
        }
      }
      if (mismatches.length > 0) await new Promise((r) => setTimeout(r, 250));
    }
    expect(mismatches.slice(0, 5)).toEqual([]);
    const described = await client.describeTable("users");
    expect((described.freshness as { kafka_lag: string }).kafka_lag).toBe("0");
  }, 120_000);
});
