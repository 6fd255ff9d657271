import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { status } from "@grpc/grpc-js";
import {
  startHarness,
  userRow,
  inBatches,
  until,
  usersSchemaJson,
  type Harness,
} from "../helpers/served-table.js";
import { loadConfig } from "../../src/config/config.js";
import { parseTablesConfig } from "../../src/config/tables-config.js";
import { StrataServer } from "../../src/serve/strata-server.js";
import { createStrataClient, type Row, type ScanOptions, type StrataClient } from "../../src/client/index.js";

const N = 3000;

/** Reads a whole scan; the keys it returned, failing on a key seen twice. */
async function scanKeys(client: StrataClient, options: ScanOptions): Promise<Set<string>> {
  const keys = new Set<string>();
  for await (const rows of client.scanTable("users", options)) {
    for (const r of rows) {
      expect(keys.has(r.key), `${r.key} scanned twice`).toBe(false);
      keys.add(r.key);
    }
  }
  return keys;
}

const code = (p: Promise<unknown>): Promise<number | undefined> =>
  p.then(
    () => undefined,
    (err: { code?: number }) => err.code,
  );

describe("ScanTable: resume tokens and shards", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({
      tables: [usersSchemaJson, { ...usersSchemaJson, name: "items" }],
      seed: Array.from({ length: N }, (_, i) => userRow(i)),
    });
  });
  afterAll(() => h.close());

  const all = new Set(Array.from({ length: N }, (_, i) => `user:${i}`));

  it("resumes after any chunk on the version it began with, while a newer one is served", async () => {
    const first: Row[] = [];
    let token: Buffer = Buffer.alloc(0);
    let chunks = 0;
    for await (const chunk of h.client.scanChunks("users", { chunkRows: 250 })) {
      expect(chunk.version).toBe(1);
      first.push(...chunk.rows);
      token = chunk.resumeToken;
      if (++chunks === 3) break; // the client goes away mid-scan
    }
    expect(first).toHaveLength(750);
    await h.writer.importRows(inBatches(Array.from({ length: N }, (_, i) => userRow(i, 2))));
    await until(async () => (await h.client.describeTable("users")).serving_version === "2");

    const rest: Row[] = [];
    for await (const chunk of h.client.scanChunks("users", { chunkRows: 400, resumeToken: token })) {
      expect(chunk.version).toBe(1);
      rest.push(...chunk.rows);
    }
    const keys = [...first, ...rest].map((r) => r.key);
    expect(new Set(keys)).toEqual(all);
    expect(keys).toHaveLength(N);
    expect(rest.every((r) => r.values[0] === "1")).toBe(true); // age: version 1's value
    // A scan that starts now reads version 2.
    for await (const chunk of h.client.scanChunks("users", { chunkRows: 100 })) {
      expect(chunk.version).toBe(2);
      expect(chunk.rows[0]!.values[0]).toBe("2");
      break;
    }
    // The last chunk's token resumes to nothing; once version 1 is gone, its tokens are NOT_FOUND.
    let last: Buffer = Buffer.alloc(0);
    for await (const chunk of h.client.scanChunks("users", { version: 1, chunkRows: 1000 }))
      last = chunk.resumeToken;
    expect(await scanKeys(h.client, { resumeToken: last })).toEqual(new Set());
    // Once version 1 is deleted, a server that does not have it open answers NOT_FOUND.
    h.store.gc(1);
    const config = loadConfig({ dataDir: h.root, port: 0, metricsPort: 0 }, {});
    const other = new StrataServer({ config, tables: parseTablesConfig({ tables: [usersSchemaJson] }) });
    await other.start();
    const client = createStrataClient(`127.0.0.1:${other.port}`);
    try {
      expect(await code(scanKeys(client, { resumeToken: token }))).toBe(status.NOT_FOUND);
    } finally {
      client.close();
      await other.stop(0);
    }
  });

  it("splits a version into shards that hold every row once between them", async () => {
    for (const count of [1, 3, 8]) {
      const union = new Set<string>();
      for (let index = 0; index < count; index++) {
        const keys = await scanKeys(h.client, { shard: { index, count }, chunkRows: 333 });
        for (const k of keys) {
          expect(union.has(k), `${k} in two shards`).toBe(false);
          union.add(k);
        }
      }
      expect(union).toEqual(all);
    }
    // A shard resumed from its own token.
    const shard = { index: 1, count: 3 };
    const whole = await scanKeys(h.client, { shard });
    const seen = new Set<string>();
    let token: Buffer = Buffer.alloc(0);
    for await (const chunk of h.client.scanChunks("users", { shard, chunkRows: 200 })) {
      chunk.rows.forEach((r) => seen.add(r.key));
      token = chunk.resumeToken;
      break;
    }
    for (const k of await scanKeys(h.client, { resumeToken: token, chunkRows: 150 })) seen.add(k);
    expect(seen).toEqual(whole);
  });

  it("answers INVALID_ARGUMENT to tokens and shards that are not a scan's", async () => {
    let token: Buffer = Buffer.alloc(0);
    for await (const chunk of h.client.scanChunks("users", { chunkRows: 10 })) {
      token = chunk.resumeToken;
      break;
    }
    const flipped = Buffer.from(token);
    flipped[28]! ^= 8;
    const invalid = [
      scanKeys(h.client, { resumeToken: Buffer.from("not a token") }),
      scanKeys(h.client, { resumeToken: flipped }),
      scanKeys(h.client, { resumeToken: token.subarray(0, 20) }),
      scanKeys(h.client, { resumeToken: token, shard: { index: 1, count: 2 } }),
      scanKeys(h.client, { resumeToken: token, version: 1 }),
      scanKeys(h.client, { shard: { index: 3, count: 3 } }),
      (async () => {
        for await (const rows of h.client.scanTable("items", { resumeToken: token })) void rows;
      })(),
    ];
    for (const p of invalid) expect(await code(p)).toBe(status.INVALID_ARGUMENT);
    // The server is still up.
    expect((await scanKeys(h.client, {})).size).toBe(N);
  });
});

describe("ScanTable through a server restart", () => {
  /** Scans while the server is replaced after 5 chunks; the keys the client got. */
  async function scanThroughRestart(retries: number): Promise<string[]> {
    const h = await startHarness({ seed: Array.from({ length: N }, (_, i) => userRow(i)) });
    let second: StrataServer | null = null;
    // A small flow-control window: the server cannot have sent the whole scan before it stops.
    const client = createStrataClient(h.address, {
      channelOptions: { "grpc-node.flow_control_window": 16384 },
    });
    try {
      const keys: string[] = [];
      let chunks = 0;
      for await (const rows of client.scanTable("users", { chunkRows: 100, retries })) {
        keys.push(...rows.map((r) => r.key));
        if (++chunks === 5) {
          await h.server.stop(5000); // ends the scan at its next chunk with UNAVAILABLE
          const port = Number(h.address.split(":")[1]);
          const config = loadConfig({ dataDir: h.root, port, metricsPort: 0 }, {});
          second = new StrataServer({ config, tables: parseTablesConfig({ tables: [usersSchemaJson] }) });
          await second.start();
        }
      }
      return keys;
    } finally {
      client.close();
      await second?.stop(0);
      await h.close();
    }
  }

  it("the client resumes a broken scan from its last token: no row lost or repeated", async () => {
    expect(await code(scanThroughRestart(0))).toBe(status.UNAVAILABLE); // the stream does break
    const keys = await scanThroughRestart(3);
    expect(keys).toHaveLength(N);
    expect(new Set(keys).size).toBe(N);
  });
});
