// Vitest globalSetup of the "integration" project: brings up a real Kafka broker and a real Redis
// server with scripts/services.sh, hands their addresses to the tests, and on teardown stops
// only what it started. If the services cannot be started, setup throws: the integration run
// fails (it never skips).
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    /** Comma-separated Kafka bootstrap servers, e.g. "127.0.0.1:19092". */
    strataKafkaBrokers: string;
    /** The same broker's SASL/PLAIN listener (user strata, password strata-test-secret). */
    strataKafkaSaslBrokers: string;
    /** Redis URL, e.g. "redis://127.0.0.1:16379". */
    strataRedisUrl: string;
  }
}

type Service = "kafka" | "redis";
const SERVICES: readonly Service[] = ["kafka", "redis"];

const repoDir = fileURLToPath(new URL("../..", import.meta.url));
const script = fileURLToPath(new URL("../../scripts/services.sh", import.meta.url));

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs services.sh; its stderr (progress, errors) is echoed with a prefix as it comes. */
function runServices(args: string[], timeoutMs: number, echo: boolean): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", [script, ...args], {
      cwd: repoDir,
      stdio: ["ignore", "pipe", "pipe"],
      timeout: timeoutMs,
      killSignal: "SIGTERM",
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
      if (echo) process.stderr.write(chunk.replace(/^(?=.)/gm, "[services.sh] "));
    });
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

function describeFailure(what: string, r: RunResult): string {
  const how = r.signal ? `was killed by ${r.signal} (timeout?)` : `exited with code ${r.code}`;
  const tail = r.stderr.trim().split("\n").slice(-40).join("\n");
  return `${what} ${how}.\n${tail}`;
}

/** Which services `services.sh status` reports as running. */
async function runningServices(): Promise<Set<Service>> {
  const r = await runServices(["status"], 30_000, false);
  const running = new Set<Service>();
  for (const s of SERVICES) {
    if (new RegExp(`^${s}: running\\b`, "m").test(r.stdout)) running.add(s);
  }
  return running;
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const before = await runningServices();

  const started = SERVICES.filter((s) => !before.has(s));
  const up = await runServices(["up"], 15 * 60_000, true);
  if (up.code !== 0) {
    // A service may have started but not become ready: stop what this run started, then fail.
    if (started.length > 0) await runServices(["down", ...started], 5 * 60_000, false).catch(() => undefined);
    throw new Error(
      `Integration tests need Kafka and Redis, but 'bash scripts/services.sh up' failed: ` +
        describeFailure("it", up) +
        `\nLogs are under .services/logs/ (or $STRATA_SERVICES_DIR/logs).`,
    );
  }
  const brokers = /^KAFKA_BROKERS=(\S+)$/m.exec(up.stdout)?.[1];
  const saslBrokers = /^KAFKA_SASL_BROKERS=(\S+)$/m.exec(up.stdout)?.[1];
  const redisUrl = /^REDIS_URL=(\S+)$/m.exec(up.stdout)?.[1];
  if (!brokers || !saslBrokers || !redisUrl) {
    throw new Error(
      `'bash scripts/services.sh up' succeeded but did not print KAFKA_BROKERS=..., KAFKA_SASL_BROKERS=... and REDIS_URL=...; ` +
        `its stdout was:\n${up.stdout}`,
    );
  }

  // Both ways: inject() in tests, and the environment that test workers (and any child
  // process they spawn, such as the strata CLI) inherit.
  project.provide("strataKafkaBrokers", brokers);
  project.provide("strataKafkaSaslBrokers", saslBrokers);
  project.provide("strataRedisUrl", redisUrl);
  process.env.STRATA_KAFKA_BROKERS = brokers;
  process.env.STRATA_REDIS_URL = redisUrl;

  return async () => {
    if (started.length === 0) return;
    const down = await runServices(["down", ...started], 5 * 60_000, false);
    if (down.code !== 0) {
      throw new Error(describeFailure(`'bash scripts/services.sh down ${started.join(" ")}'`, down));
    }
  };
}
