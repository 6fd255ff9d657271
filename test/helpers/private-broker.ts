// A Kafka broker of one test's own (scripts/services.sh with its own state folder and free ports),
// for tests that stop it or need a listener the shared broker has not (TLS): the shared broker of
// the other integration tests is never touched.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "./free-port.js";

const script = fileURLToPath(new URL("../../scripts/services.sh", import.meta.url));

export interface PrivateBroker {
  /** PLAINTEXT bootstrap servers. */
  readonly brokers: string[];
  /** The TLS listener's, when started with `tls` (certificate of test/fixtures/tls). */
  readonly tlsBrokers: string[];
  /** Stops the broker (its data stays: `start` brings it back). */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops it and removes its state. */
  remove(): Promise<void>;
}

function services(args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", [script, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => (err += c));
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0
        ? resolve(out)
        : reject(new Error(`services.sh ${args.join(" ")} exited with ${code}: ${err.slice(-2000)}`)),
    );
  });
}

export async function startPrivateBroker(options: { tls?: boolean } = {}): Promise<PrivateBroker> {
  const stateDir = mkdtempSync(join(tmpdir(), "strata-it-broker-"));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    STRATA_SERVICES_DIR: stateDir,
    STRATA_KAFKA_PORT: String(await freePort()),
    STRATA_KAFKA_CONTROLLER_PORT: String(await freePort()),
    STRATA_KAFKA_SASL_PORT: String(await freePort()),
    ...(options.tls ? { STRATA_KAFKA_TLS_PORT: String(await freePort()) } : {}),
    STRATA_STOP_TIMEOUT: "20",
  };
  const list = (out: string, name: string): string[] => {
    const m = new RegExp(`^${name}=(\\S+)$`, "m").exec(out);
    return m ? m[1]!.split(",") : [];
  };
  let out: string;
  try {
    out = await services(["up", "kafka"], env);
  } catch (err) {
    rmSync(stateDir, { recursive: true, force: true });
    throw err;
  }
  return {
    brokers: list(out, "KAFKA_BROKERS"),
    tlsBrokers: list(out, "KAFKA_TLS_BROKERS"),
    stop: async () => void (await services(["down", "kafka"], env)),
    start: async () => void (await services(["up", "kafka"], env)),
    remove: async () => {
      await services(["down", "kafka"], env).catch(() => undefined);
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}
