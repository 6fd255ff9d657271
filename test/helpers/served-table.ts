/** A temp data dir with one table, a writer for it, and a server on a free loopback port. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseTablesConfig } from "../../src/config/tables-config.js";
import { loadConfig } from "../../src/config/config.js";
import { TableStore } from "../../src/storage/table-store.js";
import { VersionWriter, type RowChange } from "../../src/storage/version-writer.js";
import { StrataServer } from "../../src/serve/strata-server.js";
import { createStrataClient, type StrataClient } from "../../src/client/index.js";
import type { TableSchema } from "../../src/format/schema.js";

export const usersSchemaJson = {
  name: "users",
  key: "user_id",
  features: [
    { name: "age", type: "int64" },
    { name: "country", type: "string" },
    { name: "premium", type: "bool" },
    { name: "ltv", type: "float64" },
    { name: "ctr", type: "float32" },
    { name: "emb", type: "float32[4]" },
    { name: "blob", type: "bytes" },
  ],
};

export interface Harness {
  root: string;
  schema: TableSchema;
  store: TableStore;
  writer: VersionWriter;
  server: StrataServer;
  client: StrataClient;
  address: string;
  close(): Promise<void>;
}

export async function* inBatches(rows: RowChange[], size = 500): AsyncGenerator<RowChange[]> {
  for (let i = 0; i < rows.length; i += size) yield rows.slice(i, i + size);
}

export async function startHarness(
  options: {
    tables?: object[];
    env?: Record<string, string>;
    seed?: RowChange[];
    /** Runs after the seed, before the server starts. */
    beforeStart?: (h: {
      store: TableStore;
      writer: VersionWriter;
      server: StrataServer;
    }) => void | Promise<void>;
  } = {},
): Promise<Harness> {
  const root = mkdtempSync(join(tmpdir(), "strata-serve-"));
  const tables = parseTablesConfig({ tables: options.tables ?? [usersSchemaJson] });
  const schema = tables.tables[0]!;
  const store = new TableStore(root, schema.name);
  const writer = new VersionWriter(store, schema);
  if (options.seed) await writer.importRows(inBatches(options.seed));
  const config = loadConfig({ dataDir: root, port: 0, metricsPort: 0 }, { ...options.env });
  const server = new StrataServer({ config, tables, backstopIntervalMs: 200 });
  await options.beforeStart?.({ store, writer, server });
  await server.start();
  const address = `127.0.0.1:${server.port}`;
  const client = createStrataClient(
    address,
    options.env?.STRATA_AUTH_TOKEN ? { token: options.env.STRATA_AUTH_TOKEN } : {},
  );
  return {
    root,
    schema,
    store,
    writer,
    server,
    client,
    address,
    async close() {
      client.close();
      await server.stop(100);
      rmSync(root, { recursive: true, force: true });
    },
  };
}

export const userRow = (i: number, version = 1): RowChange => ({
  key: `user:${i}`,
  eventTimeMs: 1_700_000_000_000 + i,
  values: [
    BigInt(version),
    i % 11 === 0 ? null : `c${i % 7}`,
    i % 2 === 0,
    i * 1.5,
    Math.fround(i / 8),
    new Float32Array([i, version, -i, 0.1]),
    i % 3 === 0 ? null : Buffer.from([i & 255, 1, 2]),
  ],
});

export async function until(check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("Timed out waiting for a condition");
    await new Promise((r) => setTimeout(r, 10));
  }
}
