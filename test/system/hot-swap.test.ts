import { afterEach, describe, expect, it } from "vitest";
import { openSync, readSync, writeSync, closeSync } from "node:fs";
import { status } from "@grpc/grpc-js";
import {
  inBatches,
  startHarness,
  until,
  userRow,
  usersSchemaJson,
  type Harness,
} from "../helpers/served-table.js";
import type { VersionEvent } from "../../src/client/index.js";
import { StrataServer } from "../../src/serve/strata-server.js";
import { loadConfig } from "../../src/config/config.js";
import { parseTablesConfig } from "../../src/config/tables-config.js";

const KEYS = Array.from({ length: 100 }, (_, i) => `user:${i}`);
const allAt = (version: number) => KEYS.map((_, i) => userRow(i, version));

describe("hot swap", () => {
  let h: Harness;
  afterEach(() => h?.close());

  it("serves 20 bidi streams through 100 publishes and rollbacks with zero failures, each response from one version", async () => {
    h = await startHarness({ seed: allAt(1) });
    const events: VersionEvent[] = [];
    const watch = h.client.watchVersions(["users"], (e) => events.push(e));
    await until(() => events.length > 0); // subscribed: the first event names the version served
    let running = true;
    let answered = 0;
    const failures: unknown[] = [];
    const versionsSeen = new Set<number>();
    const streams = Array.from({ length: 20 }, async (_, s) => {
      const stream = h.client.openStream();
      while (running) {
        try {
          const res = await stream.send({
            table: "users",
            keys: KEYS.slice(s * 5, s * 5 + 20),
            features: ["age", "emb"],
          });
          versionsSeen.add(res.version);
          for (const row of res.rows) {
            // Every row of a version carries that version in `age` and in emb[1].
            if (
              row.status !== "ROW_STATUS_FOUND" ||
              row.values[0] !== String(res.version) ||
              (row.values[1] as number[])[1] !== res.version
            ) {
              throw new Error(
                `row ${row.key} of response at v${res.version} is ${JSON.stringify(row.values)}`,
              );
            }
          }
          answered++;
        } catch (err) {
          failures.push(err);
        }
      }
      stream.close();
    });
    for (let op = 0; op < 100; op++) {
      const current = h.store.requireCurrentVersion();
      if (op % 4 === 3 && current > 1) {
        // The server must have seen `current`, or the rollback would land on what it serves and
        // be invisible to it (correct, but then there is no rollback to observe).
        await until(() => h.server.tables.get("users")!.servingVersion === current);
        const { to } = h.store.rollback({ verify: () => {} });
        h.store.resume();
        // Let the server see this rollback before the next publish (else it may skip over it).
        await until(() => h.server.tables.get("users")!.servingVersion === to);
      } else {
        const next = Math.max(...h.store.listVersions(), ...h.store.readState().rolled_back) + 1;
        h.writer.publishDelta(allAt(next), null, current);
      }
      await new Promise((r) => setTimeout(r, 15));
    }
    await until(() => h.server.tables.get("users")!.servingVersion === h.store.requireCurrentVersion());
    running = false;
    await Promise.all(streams);
    watch.cancel();
    expect(failures).toEqual([]);
    expect(answered).toBeGreaterThan(200);
    expect(versionsSeen.size).toBeGreaterThan(10);
    expect(events.filter((e) => e.type === "TYPE_PUBLISHED").length).toBeGreaterThan(10);
    expect(events.filter((e) => e.type === "TYPE_ROLLED_BACK").length).toBeGreaterThan(3);
  });

  it("answers NOT_FOUND for a version gc removed, even one it had open", async () => {
    h = await startHarness({ seed: allAt(1) });
    await h.writer.importRows(inBatches(allAt(2)));
    await h.writer.importRows(inBatches(allAt(3)));
    const at = (version: number) =>
      h.client.getFeatures({ table: "users", keys: ["user:1"], version }).then(
        (r) => r.version,
        (e: { code: number }) => e.code,
      );
    expect(await at(1)).toBe(1); // opened, and kept open for requests that name it
    await until(async () => (await at(0)) === 3); // serving v3, so v1 is an older version to it
    h.store.gc(1);
    expect(await at(1)).toBe(status.NOT_FOUND);
    expect(await at(2)).toBe(status.NOT_FOUND);
  });

  it("answers DATA_LOSS for a flipped record, never its bytes, then falls back to a version that verifies", async () => {
    h = await startHarness({ seed: allAt(1) });
    h.writer.publishDelta([userRow(7, 2)], null, 1);
    await until(() => h.server.tables.get("users")!.servingVersion === 2);
    const events: VersionEvent[] = [];
    const watch = h.client.watchVersions([], (e) => events.push(e));
    await until(() => events.length > 0);
    // Damage the delta's record of user:7 in place (what a bad disk would do).
    const delta = h.store.readManifest(2).manifest.segments[1]!;
    const path = h.store.segmentPath(delta.uuid);
    const fd = openSync(path, "r+");
    const byte = Buffer.alloc(1);
    const at = 4096 + 24 + 8 + 20; // inside the first record's value
    readSync(fd, byte, 0, 1, at);
    byte[0]! ^= 0x04;
    writeSync(fd, byte, 0, 1, at);
    closeSync(fd);

    const res = await h.client.getFeatures({ table: "users", keys: ["user:7", "user:8"] });
    expect(res.version).toBe(2);
    expect(res.rows[0]!.status).toBe("ROW_STATUS_DATA_LOSS");
    expect(res.rows[0]!.values).toEqual([]);
    expect(res.rows[1]!.status).toBe("ROW_STATUS_FOUND");
    await until(() => events.some((e) => e.type === "TYPE_FALLBACK"));
    expect(events.find((e) => e.type === "TYPE_FALLBACK")).toMatchObject({
      table: "users",
      version: 1,
      previous_version: 2,
    });
    const after = await h.client.getFeatures({ table: "users", keys: ["user:7"] });
    expect(after.version).toBe(1);
    expect(after.rows[0]!.status).toBe("ROW_STATUS_FOUND");
    expect(after.rows[0]!.values[0]).toBe("1");
    watch.cancel();
  });

  it("starting on a current version that fails verification, serves the newest one that verifies", async () => {
    const events: { type: string; version: number; previousVersion: number }[] = [];
    h = await startHarness({
      seed: allAt(1),
      beforeStart: ({ store, writer, server }) => {
        const m = writer.publishDelta(allAt(2), null, 1);
        const fd = openSync(store.segmentPath(m.segments[1]!.uuid), "r+");
        writeSync(fd, Buffer.from([0xee]), 0, 1, 4096 + 100);
        closeSync(fd);
        server.events.on("version", (e: (typeof events)[number]) => events.push(e));
      },
    });
    expect(h.store.requireCurrentVersion()).toBe(2);
    expect(events.map((e) => [e.type, e.version])).toEqual([
      ["rejected", 2],
      ["fallback", 1],
    ]);
    const res = await h.client.getFeatures({ table: "users", keys: ["user:1"] });
    expect(res.version).toBe(1);
    expect(res.rows[0]!.values[0]).toBe("1");
  });

  it("starting with no version that verifies, says so to every request", async () => {
    h = await startHarness({
      seed: allAt(1),
      beforeStart: ({ store }) => {
        const fd = openSync(store.segmentPath(store.readManifest(1).manifest.segments[0]!.uuid), "r+");
        writeSync(fd, Buffer.from([0xee]), 0, 1, 4096 + 100);
        closeSync(fd);
      },
    });
    await expect(h.client.getFeatures({ table: "users", keys: ["user:1"] })).rejects.toMatchObject({
      code: 14, // UNAVAILABLE, as with nothing published
      details: expect.stringMatching(
        /^Table "users" has no version that verifies \(refused: v1; v1: .*body CRC/,
      ),
    });
  });

  it("refuses a published version that fails verification and keeps serving", async () => {
    h = await startHarness({ seed: allAt(1) });
    const events: VersionEvent[] = [];
    const watch = h.client.watchVersions(["users"], (e) => events.push(e));
    await until(() => events.length > 0);
    expect(events[0]).toMatchObject({ type: "TYPE_SERVING", version: 1 });
    // Publish v2, but damage its delta before the server swaps (the watcher is async).
    const m = h.writer.publishDelta(allAt(2), null, 1);
    const path = h.store.segmentPath(m.segments[1]!.uuid);
    const fd = openSync(path, "r+");
    writeSync(fd, Buffer.from([0xee]), 0, 1, 4096 + 100);
    closeSync(fd);
    void h.server.refreshAll();
    await until(() => events.some((e) => e.type === "TYPE_REJECTED"));
    expect(events.find((e) => e.type === "TYPE_REJECTED")).toMatchObject({ version: 2 });
    const res = await h.client.getFeatures({ table: "users", keys: ["user:1"] });
    expect(res.version).toBe(1);
    watch.cancel();
  });
});

describe("watching versions through a server restart", () => {
  it("the client's watch subscribes again and hears what the next server serves and publishes", async () => {
    const h = await startHarness({ seed: allAt(1) });
    const events: VersionEvent[] = [];
    const errors: number[] = [];
    const watch = h.client.watchVersions(["users"], (e) => events.push(e), {
      onError: (err) => errors.push(err.code),
    });
    let second: StrataServer | null = null;
    try {
      await until(() => events.length > 0);
      const stopped = performance.now();
      await h.server.stop(5000);
      // The watch did not hold the shutdown for its grace period: the server ended it.
      expect(performance.now() - stopped).toBeLessThan(2000);
      await until(() => errors.length > 0);
      expect(errors[0]).toBe(status.UNAVAILABLE);
      const port = Number(h.address.split(":")[1]);
      second = new StrataServer({
        config: loadConfig({ dataDir: h.root, port, metricsPort: 0 }, {}),
        tables: parseTablesConfig({ tables: [usersSchemaJson] }),
        backstopIntervalMs: 100,
      });
      await second.start();
      await until(() => events.filter((e) => e.type === "TYPE_SERVING").length === 2, 10_000);
      await h.writer.importRows(inBatches(allAt(2)));
      await until(() => events.some((e) => e.type === "TYPE_PUBLISHED" && e.version === 2), 10_000);
    } finally {
      watch.cancel();
      await second?.stop(0);
      await h.close();
    }
  });
});

describe("streams through a server restart", () => {
  /** Five senders on one stream while the server is replaced; what they got. */
  async function sendThroughRestart(retries: number): Promise<{ answered: number; failures: number[] }> {
    const h = await startHarness({ seed: allAt(1) });
    const stream = h.client.openStream({ retries });
    let second: StrataServer | null = null;
    let running = true;
    let answered = 0;
    const failures: number[] = [];
    try {
      const senders = Array.from({ length: 5 }, async (_, s) => {
        while (running) {
          try {
            const res = await stream.send({ table: "users", keys: KEYS.slice(s * 10, s * 10 + 10) });
            expect(res.rows.every((r) => r.status === "ROW_STATUS_FOUND")).toBe(true);
            answered++;
          } catch (err) {
            failures.push((err as { code: number }).code);
            await new Promise((r) => setTimeout(r, 20));
          }
        }
      });
      await until(() => answered > 200);
      await h.server.stop(5000);
      second = new StrataServer({
        config: loadConfig({ dataDir: h.root, port: Number(h.address.split(":")[1]), metricsPort: 0 }, {}),
        tables: parseTablesConfig({ tables: [usersSchemaJson] }),
      });
      await second.start();
      const before = answered;
      await until(() => answered > before + 200, 10_000);
      running = false;
      await Promise.all(senders);
      return { answered, failures };
    } finally {
      running = false;
      stream.close();
      await second?.stop(0);
      await h.close();
    }
  }

  it("sends the requests a stopping server left unanswered again on a new stream: none fails", async () => {
    const broken = await sendThroughRestart(0);
    expect(broken.failures.length).toBeGreaterThan(0); // the stream does break
    expect(new Set(broken.failures)).toEqual(new Set([status.UNAVAILABLE]));
    const kept = await sendThroughRestart(5);
    expect(kept.failures).toEqual([]);
  });
});

describe("unary calls through a server restart", () => {
  it("with a deadline, wait for the server to be back instead of failing", async () => {
    const h = await startHarness({ seed: allAt(1) });
    let second: StrataServer | null = null;
    try {
      expect((await h.client.getFeatures({ table: "users", keys: ["user:1"] })).rows).toHaveLength(1);
      await h.server.stop(5000);
      // Nobody listens for 300 ms. Without a deadline a call fails at once; with one, it waits.
      await expect(h.client.getFeatures({ table: "users", keys: ["user:2"] })).rejects.toMatchObject({
        code: status.UNAVAILABLE,
      });
      const call = h.client.getFeatures({ table: "users", keys: ["user:2"], deadlineMs: 5000 });
      await new Promise((r) => setTimeout(r, 300));
      second = new StrataServer({
        config: loadConfig({ dataDir: h.root, port: Number(h.address.split(":")[1]), metricsPort: 0 }, {}),
        tables: parseTablesConfig({ tables: [usersSchemaJson] }),
      });
      await second.start();
      expect((await call).rows[0]!.status).toBe("ROW_STATUS_FOUND");
    } finally {
      await second?.stop(0);
      await h.close();
    }
  });
});
