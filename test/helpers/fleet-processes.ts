// Fleet integration harness: `strata serve` processes (node dist/cli/main.js, so run `npm run
// build` first) with their own data dirs and ports, on a fleet namespace of their own in the
// test Redis; the CLI; and a gRPC client per node.
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { randomUUID, createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { ChannelCredentials } from "@grpc/grpc-js";
import { createStrataClient, type StrataClient } from "../../src/client/index.js";
import { TableStore } from "../../src/storage/table-store.js";
import { RedisCoordinationStore } from "../../src/control/redis-coordination-store.js";

export const CLI = resolve("dist/cli/main.js");

/** The fleet tests run the built CLI: refuse a missing or stale build with the fix. */
export function assertBuilt(): void {
  const built = resolve("dist/control/join-fleet.js");
  const source = resolve("src/control/join-fleet.ts");
  if (!existsSync(CLI) || !existsSync(built) || statSync(built).mtimeMs < statSync(source).mtimeMs) {
    throw new Error("The fleet tests run dist/cli/main.js: run `npm run build` first (npm test does)");
  }
}

export const tablesConfig = (topic = "strata.deltas.users") => ({
  tables: [
    {
      name: "users",
      key: "user_id",
      topic,
      features: [
        { name: "age", type: "int64" },
        { name: "city", type: "string" },
      ],
    },
  ],
});

export interface NodeProcess {
  readonly name: string;
  readonly dataDir: string;
  readonly address: string;
  readonly client: StrataClient;
  readonly store: TableStore;
  readonly proc: ChildProcess;
  readonly log: () => string;
  /** SIGTERM and wait for the exit. */
  stop(): Promise<void>;
  /** SIGKILL (kill -9) and wait for the exit. */
  kill(): Promise<void>;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class FleetHarness {
  readonly root = mkdtempSync(join(tmpdir(), "strata-fleet-it-"));
  readonly fleetName = `it-${randomUUID().slice(0, 8)}`;
  readonly configPath = join(this.root, "tables.json");
  readonly nodes = new Set<NodeProcess>();

  constructor(
    readonly redisUrl: string,
    readonly baseEnv: Record<string, string> = {},
    topic?: string,
  ) {
    assertBuilt();
    writeFileSync(this.configPath, JSON.stringify(tablesConfig(topic)));
  }

  env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    return {
      ...process.env,
      // No Kafka unless a test asks: the global setup exports the broker to every child.
      STRATA_KAFKA_BROKERS: "",
      STRATA_REDIS_URL: this.redisUrl,
      STRATA_FLEET_NAME: this.fleetName,
      STRATA_CONFIG: this.configPath,
      STRATA_LEASE_TTL_MS: "2000",
      STRATA_HEARTBEAT_INTERVAL_MS: "200",
      STRATA_NODE_TTL_MS: "1500",
      STRATA_LOG_LEVEL: "debug",
      ...this.baseEnv,
      ...extra,
    };
  }

  /**
   * Starts `strata serve` on a free port; resolves once it prints where it serves. `options.args`
   * go to `serve` (e.g. TLS files), and the node's client connects with `options.credentials`.
   */
  async startNode(
    name: string,
    role: "writer" | "replica",
    extra: Record<string, string> = {},
    dir = name,
    options: { args?: string[]; credentials?: ChannelCredentials } = {},
  ): Promise<NodeProcess> {
    const dataDir = join(this.root, dir);
    mkdirSync(dataDir, { recursive: true });
    const proc = spawn(
      "node",
      [CLI, "serve", "--data-dir", dataDir, "--port", "0", "--metrics-port", "off", ...(options.args ?? [])],
      {
        env: this.env({ STRATA_NODE_ID: name, STRATA_FLEET_ROLE: role, ...extra }),
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let out = "";
    let err = "";
    proc.stdout!.setEncoding("utf8").on("data", (c: string) => (out += c));
    proc.stderr!.setEncoding("utf8").on("data", (c: string) => (err += c));
    const exited = new Promise<void>((r) => proc.once("exit", () => r()));
    const port = await new Promise<number>((resolvePort, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`node ${name} did not start in 20 s:\n${err.slice(-3000)}`)),
        20_000,
      );
      const check = (): void => {
        const m = / on [^\s:]+:(\d+)\n/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolvePort(Number(m[1]));
        }
      };
      proc.stdout!.on("data", check);
      proc.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`node ${name} exited with ${code}:\n${err.slice(-3000)}`));
      });
    });
    const address = `127.0.0.1:${port}`;
    const node: NodeProcess = {
      name,
      dataDir,
      address,
      client: createStrataClient(address, options.credentials ? { credentials: options.credentials } : {}),
      store: new TableStore(dataDir, "users"),
      proc,
      log: () => err,
      stop: async () => {
        node.client.close();
        if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
        await exited;
        this.nodes.delete(node);
      },
      kill: async () => {
        node.client.close();
        if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
        await exited;
        this.nodes.delete(node);
      },
    };
    this.nodes.add(node);
    return node;
  }

  /** Runs the strata CLI with this fleet's environment. */
  cli(args: string[], extra: Record<string, string> = {}): Promise<CliResult> {
    return new Promise((resolveRun) => {
      execFile(
        "node",
        [CLI, ...args],
        { env: this.env(extra), maxBuffer: 1 << 26 },
        (error, stdout, stderr) => {
          const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
          resolveRun({ code, stdout, stderr });
        },
      );
    });
  }

  /** Imports rows into a node's data dir, as an operator would on the writer's host. */
  async importRows(node: NodeProcess, rows: [string, number, string][]): Promise<number> {
    const file = join(this.root, `import-${randomUUID()}.csv`);
    writeFileSync(file, "user_id,age,city\n" + rows.map((r) => r.join(",")).join("\n") + "\n");
    const r = await this.cli([
      "--data-dir",
      node.dataDir,
      "--json",
      "import",
      "users",
      file,
      "--no-progress",
    ]);
    if (r.code !== 0) throw new Error(`import failed (${r.code}): ${r.stderr}`);
    return (JSON.parse(r.stdout) as { version: number }).version;
  }

  /** A control-plane connection of the test's own, on this fleet's namespace. */
  connect(): Promise<RedisCoordinationStore> {
    return RedisCoordinationStore.connect({ url: this.redisUrl, fleetName: this.fleetName });
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.nodes].map((n) => n.kill()));
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** The version a node answers GetFeatures from (0 when it serves nothing). */
export async function servedVersion(node: NodeProcess, key = "u1"): Promise<number> {
  try {
    const res = await node.client.getFeatures({ table: "users", keys: [key] });
    return Number(res.version);
  } catch {
    return 0;
  }
}

/** Polls until `check` holds; returns the time it took. */
export async function until(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 10_000,
): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await check()) return Date.now() - started;
    if (Date.now() - started > timeoutMs)
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** SHA-256 of each segment file of `version` on a node, in manifest order, and of its MANIFEST. */
export function versionHashes(node: NodeProcess, version: number): { manifest: string; segments: string[] } {
  const sha = (p: string): string => createHash("sha256").update(readFileSync(p)).digest("hex");
  const { manifest, path } = node.store.readManifest(version);
  return { manifest: sha(path), segments: manifest.segments.map((s) => sha(node.store.segmentPath(s.uuid))) };
}
