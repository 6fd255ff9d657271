import { describe, expect, it } from "vitest";
import { execFile, spawn } from "node:child_process";
import { promisify } from "node:util";
import { join, resolve } from "node:path";
import { rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { freePort } from "../helpers/free-port.js";
import { CLI, runCommand } from "../helpers/cli.js";
import { until } from "../helpers/served-table.js";

const run = promisify(execFile);
const serveFlags = (port: number, metricsPort: number, workers: number): string[] => [
  "serve",
  "--port",
  String(port),
  "--metrics-port",
  String(metricsPort),
  "--workers",
  String(workers),
];
// A single host: not the fleet or broker an integration run in the same vitest process exports.
const ENV = { ...process.env, STRATA_REDIS_URL: "", STRATA_KAFKA_BROKERS: "" };
const SAMPLE = ["--data-dir", resolve("sample/segments"), "--config", resolve("sample/strata.tables.json")];

describe("strata serve", () => {
  it("serves the bundled sample with 2 workers: get --server, summed metrics, clean exit on SIGTERM", async () => {
    const [port, metricsPort] = [await freePort(), await freePort()];
    const server = spawn("node", [CLI, ...SAMPLE, ...serveFlags(port, metricsPort, 2)], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...ENV, STRATA_MAX_KEYS_PER_REQUEST: "1500" },
    });
    let out = "";
    server.stdout.on("data", (d: Buffer) => (out += d));
    const exited = new Promise<number | null>((r) => server.on("exit", (code) => r(code)));
    try {
      const deadline = Date.now() + 20_000;
      let got: { rows: Array<{ key: string; status: string; features: Record<string, unknown> }> } | null =
        null;
      while (!got && Date.now() < deadline) {
        try {
          const r = await run("node", [
            CLI,
            ...SAMPLE,
            "get",
            "users",
            "user:1",
            "user:0",
            "--server",
            `127.0.0.1:${port}`,
            "--json",
          ]);
          got = JSON.parse(r.stdout);
        } catch {
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      expect(out).toContain("2 workers serving");
      expect(got!.rows[0]).toMatchObject({
        key: "user:1",
        status: "FOUND",
        features: { age: 45, country: "DE" },
      });
      expect(got!.rows[1]).toMatchObject({ key: "user:0", status: "NOT_FOUND" });
      const local = JSON.parse(
        (await run("node", [CLI, ...SAMPLE, "get", "users", "user:1", "--json"])).stdout,
      );
      expect(local.rows[0].features).toEqual(got!.rows[0]!.features);
      // The server's errors give the exit codes `--local` gives (4 unknown version or table, 2 bad request).
      const remote = async (...args: string[]) =>
        (await runCommand("node", [CLI, ...SAMPLE, "get", ...args, "--server", `127.0.0.1:${port}`])).code;
      expect(await remote("users", "x", "--version", "999")).toBe(4);
      expect(await remote("nosuch", "x")).toBe(4);
      expect(await remote("users", "x", "--features", "nope")).toBe(2);
      expect(await remote("users", "k".repeat(1025))).toBe(2);
      // More keys than the server takes in a request: get asks in parts, all of one version.
      const keysFile = join(tmpdir(), `strata-keys-${process.pid}.txt`);
      writeFileSync(keysFile, Array.from({ length: 2500 }, (_, i) => `user:${i + 1}`).join("\n") + "\n");
      try {
        const many = await runCommand("node", [
          CLI,
          ...SAMPLE,
          "get",
          "users",
          "--keys-from",
          keysFile,
          "--server",
          `127.0.0.1:${port}`,
          "--json",
        ]);
        expect(many.code).toBe(0);
        const rows = many.stdout
          .trim()
          .split("\n")
          .map((l) => JSON.parse(l) as { key: string; status: string; version: number });
        expect(rows.map((r) => r.key)).toEqual(Array.from({ length: 2500 }, (_, i) => `user:${i + 1}`));
        expect(rows.filter((r) => r.status === "FOUND")).toHaveLength(1000);
        expect(new Set(rows.map((r) => r.version)).size).toBe(1);
      } finally {
        rmSync(keysFile, { force: true });
      }
      const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      expect(metrics).toMatch(/strata_rows_total\{table="users",status="found"\} [1-9]/);
    } finally {
      server.kill("SIGTERM");
    }
    expect(await exited).toBe(0);
  });

  it("serves over TLS to a client that trusts its certificate; refuses a certificate that is not PEM (exit 3)", async () => {
    const [cert, key] = ["cert.pem", "key.pem"].map((f) => resolve("test/fixtures/tls", f)) as [
      string,
      string,
    ];
    const port = await freePort();
    const server = spawn(
      "node",
      [CLI, ...SAMPLE, ...serveFlags(port, await freePort(), 1), "--tls-cert", cert, "--tls-key", key],
      { stdio: "ignore", env: ENV },
    );
    const exited = new Promise<number | null>((r) => server.on("exit", (code) => r(code)));
    try {
      const get = (...extra: string[]) =>
        runCommand("node", [
          CLI,
          ...SAMPLE,
          "get",
          "users",
          "user:1",
          "--server",
          `127.0.0.1:${port}`,
          ...extra,
        ]);
      await until(async () => (await get("--tls-ca", cert)).code === 0, 20_000);
      expect((await get("--tls-ca", cert)).stdout).toMatch(/^user:1\tFOUND\t/);
      expect((await get()).code).toBe(8); // plaintext to a TLS port
      const bad = await runCommand(
        "node",
        [
          CLI,
          ...SAMPLE,
          ...serveFlags(await freePort(), await freePort(), 1),
          "--tls-cert",
          key,
          "--tls-key",
          key,
        ],
        { env: ENV, timeout: 20_000 },
      );
      expect(bad.code).toBe(3);
      expect(bad.stderr).toContain(`strata: Cannot use --tls-cert "${key}"`);
    } finally {
      server.kill("SIGTERM");
    }
    expect(await exited).toBe(0);
  });

  it("exits with the documented codes", async () => {
    const code = async (args: string[]) => (await runCommand("node", [CLI, ...SAMPLE, ...args])).code;
    expect(await code(["versions", "nope"])).toBe(4);
    expect(await code(["get", "users", "x", "--version", "999"])).toBe(4);
    expect(await code(["bogus"])).toBe(2);
    expect(await code(["get", "users", "user:1", "--server", "127.0.0.1:1"])).toBe(8);
    expect(await code(["--config", "/nonexistent.json", "tables"])).toBe(3);
    expect(await code(["verify", "users", "--version", "999"])).toBe(4);
    expect(await code(["import", "users", "/nonexistent.csv"])).toBe(7);
    expect(await code(["produce", "users", "/nonexistent.jsonl", "--kafka-brokers", "127.0.0.1:1"])).toBe(7);
    expect(await code(["import", "users", resolve("sample"), "--format", "csv"])).toBe(7); // a directory
  });

  it("exits 10, saying which port is taken, when its gRPC or metrics port is in use", async () => {
    const taken = createServer();
    await new Promise<void>((done) => taken.listen(0, "127.0.0.1", done));
    const busy = (taken.address() as AddressInfo).port;
    try {
      // Within the timeout: nothing it started (watchers, the gRPC server) may keep it alive.
      const serve = (port: number, metricsPort: number, workers = 1) =>
        runCommand("node", [CLI, ...SAMPLE, ...serveFlags(port, metricsPort, workers)], {
          env: ENV,
          timeout: 20_000,
        });
      const grpc = await serve(busy, await freePort());
      expect(grpc.code).toBe(10);
      expect(grpc.stderr).toContain(
        `strata: Cannot listen on 127.0.0.1:${busy} (gRPC): address already in use (EADDRINUSE)\n`,
      );
      const metrics = await serve(await freePort(), busy);
      expect(metrics.code).toBe(10);
      expect(metrics.stderr).toContain(
        `strata: Cannot listen on 127.0.0.1:${busy} (/metrics): address already in use (EADDRINUSE)\n`,
      );
      expect(metrics.stderr).not.toContain("    at "); // no stack: not a bug
      // Workers that cannot bind are not started again and again: the primary exits with them.
      const workers = await serve(busy, await freePort(), 2);
      expect(workers.code).toBe(10);
      expect(workers.stderr).toContain(
        `Cannot listen on 127.0.0.1:${busy} (gRPC): address already in use (EADDRINUSE)`,
      );
    } finally {
      taken.close();
    }
  });
});
