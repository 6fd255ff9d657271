/**
 * SIGHUP reloads the table config of a running `strata serve` (docs/operations.md, "Reloading the
 * table config"): tables added are served, tables removed are unknown, a changed table is served
 * under its new features, and a config that does not parse is refused while the server goes on
 * with what it had. With workers, every worker follows.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { status as Status } from "@grpc/grpc-js";
import { createStrataClient, type StrataClient } from "../../src/client/index.js";
import { startServe, type ServeProcess } from "../helpers/serve-process.js";
import { runStrata } from "../helpers/cli.js";
import { until } from "../helpers/served-table.js";

const users = JSON.parse(readFileSync(resolve("sample/strata.tables.json"), "utf8")).tables[0];
const usersScored = { ...users, features: [...users.features, { name: "score", type: "float64" }] };
const items = {
  name: "items",
  key: "item_id",
  features: [
    { name: "price", type: "float64" },
    { name: "title", type: "string" },
  ],
};

describe("strata serve reloads its table config on SIGHUP", () => {
  let dir: string;
  let server: ServeProcess | null = null;
  let client: StrataClient | null = null;
  const writeConfig = (tables: object[]) =>
    writeFileSync(join(dir, "tables.json"), JSON.stringify({ tables }));

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "strata-reload-"));
    // Both tables have a version before the server knows of `items`.
    writeConfig([users, items]);
    writeFileSync(join(dir, "items.csv"), 'item_id,price,title\nitem:1,9.5,"a, b"\nitem:2,,plain\n');
    for (const [table, file] of [
      ["users", resolve("sample/users.csv")],
      ["items", join(dir, "items.csv")],
    ]) {
      const r = await runStrata(dir, "data", ["import", table!, file!]);
      expect(r.code, r.stderr).toBe(0);
    }
    writeConfig([users]);
  });

  afterEach(async () => {
    client?.close();
    client = null;
    await server?.stop();
    server = null;
    rmSync(dir, { recursive: true, force: true });
  });

  async function serve(workers: number): Promise<{ port: number; metricsPort: number }> {
    server = await startServe(join(dir, "data"), join(dir, "tables.json"), {
      args: ["--workers", String(workers)],
      metrics: true,
    });
    client = createStrataClient(server.address);
    return { port: Number(server.address.split(":")[1]), metricsPort: server.metricsPort! };
  }

  const tableNames = async () => (await client!.listTables()).map((t) => t["name"]);
  const codeOf = (p: Promise<unknown>) =>
    p.then(
      () => Status.OK,
      (err: { code?: number }) => err.code,
    );
  const metric = async (metricsPort: number, name: string) => {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const line = text.split("\n").find((l) => l.startsWith(name + " ") || l.startsWith(name + "{"));
    return line === undefined ? undefined : Number(line.split(" ").pop());
  };

  it("adds, changes and removes tables without a restart; refuses a config that does not parse", async () => {
    const { metricsPort } = await serve(1);
    expect(await tableNames()).toEqual(["users"]);
    expect(await codeOf(client!.getFeatures({ table: "items", keys: ["item:1"] }))).toBe(Status.NOT_FOUND);
    const before = await client!.getFeatures({ table: "users", keys: ["user:1"] });
    expect(before.rows[0]!.status).toBe("ROW_STATUS_FOUND");
    const foundBefore = await metric(metricsPort, 'strata_rows_total{table="users",status="found"}');
    expect(foundBefore).toBe(1);

    // `items` added, `score` added to `users`.
    writeConfig([usersScored, items]);
    server!.proc.kill("SIGHUP");
    await until(async () => (await tableNames()).includes("items"), 10_000);
    const got = await client!.getFeatures({ table: "items", keys: ["item:1", "item:2", "item:3"] });
    expect(got.rows.map((r) => r.status)).toEqual([
      "ROW_STATUS_FOUND",
      "ROW_STATUS_FOUND",
      "ROW_STATUS_NOT_FOUND",
    ]);
    expect(got.rows[0]!.values).toEqual([9.5, "a, b"]);
    expect(got.rows[1]!.values).toEqual([null, "plain"]);
    await until(async () => {
      const res = await client!.getFeatures({ table: "users", keys: ["user:1"] });
      return res.features.includes("score");
    }, 10_000);
    const scored = await client!.getFeatures({ table: "users", keys: ["user:1"] });
    expect(scored.rows[0]!.values).toEqual([...before.rows[0]!.values, null]);
    expect(scored.version).toBe(before.version);
    expect(server!.log()).toMatch(/"msg":"config reloaded"/);
    expect(await metric(metricsPort, "strata_config_last_reload_successful")).toBe(1);
    // The changed table went on counting its rows (one row before, at least two since).
    expect(
      await metric(metricsPort, 'strata_rows_total{table="users",status="found"}'),
    ).toBeGreaterThanOrEqual(foundBefore! + 2);

    // A config cut off mid-write: refused, and nothing changes.
    writeFileSync(join(dir, "tables.json"), '{"tables":[{"name":"users"');
    server!.proc.kill("SIGHUP");
    await until(
      async () => (await metric(metricsPort, "strata_config_last_reload_successful")) === 0,
      10_000,
    );
    const refusal = server!
      .log()
      .split("\n")
      .find((l) => l.includes("config reload refused"));
    expect(refusal).toContain("Cannot parse table config");
    expect(await tableNames()).toEqual(["users", "items"]);
    expect((await client!.getFeatures({ table: "items", keys: ["item:1"] })).rows[0]!.status).toBe(
      "ROW_STATUS_FOUND",
    );

    // `items` removed: unknown again, and gone from the metrics.
    writeConfig([usersScored]);
    server!.proc.kill("SIGHUP");
    await until(async () => (await tableNames()).length === 1, 10_000);
    expect(await codeOf(client!.getFeatures({ table: "items", keys: ["item:1"] }))).toBe(Status.NOT_FOUND);
    expect(await metric(metricsPort, "strata_config_last_reload_successful")).toBe(1);
    expect(await metric(metricsPort, 'strata_serving_version{table="items"}')).toBeUndefined();
    expect(server!.proc.exitCode).toBeNull();
  });

  it("reloads every worker when the primary gets SIGHUP", async () => {
    const { port } = await serve(2);
    // New connections go to the workers in turn: eight fresh clients ask both.
    const everyWorkerAnswers = async () => {
      const codes = await Promise.all(
        Array.from({ length: 8 }, async () => {
          const c = createStrataClient(`127.0.0.1:${port}`);
          try {
            return await codeOf(c.getFeatures({ table: "items", keys: ["item:1"] }));
          } finally {
            c.close();
          }
        }),
      );
      return codes.every((code) => code === Status.OK);
    };
    expect(await everyWorkerAnswers()).toBe(false);
    writeConfig([users, items]);
    server!.proc.kill("SIGHUP");
    await until(everyWorkerAnswers, 10_000);
    expect(server!.proc.exitCode).toBeNull();
  });
});
