/**
 * `strata serve` as a child process on a free port (the built CLI), with its log and a stop that
 * waits for the exit. One host unless `env` says otherwise: the integration setup exports the
 * test broker and Redis to children, which would make the server ingest or join a fleet.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { CLI } from "./cli.js";
import { freePort } from "./free-port.js";

export interface ServeProcess {
  readonly proc: ChildProcess;
  readonly address: string;
  readonly metricsPort: number | null;
  /** Its stderr so far (pino's JSON lines). */
  log(): string;
  /** SIGTERM, and resolves once it has exited. */
  stop(): Promise<void>;
}

export async function startServe(
  dataDir: string,
  config: string,
  options: { env?: Record<string, string>; args?: string[]; metrics?: boolean } = {},
): Promise<ServeProcess> {
  const port = await freePort();
  const metricsPort = options.metrics ? await freePort() : null;
  const proc = spawn(
    "node",
    [
      CLI,
      "--data-dir",
      dataDir,
      "--config",
      config,
      "serve",
      "--port",
      String(port),
      "--metrics-port",
      metricsPort === null ? "off" : String(metricsPort),
      ...(options.args ?? []),
    ],
    {
      env: { ...process.env, STRATA_REDIS_URL: "", STRATA_KAFKA_BROKERS: "", ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let log = "";
  proc.stderr!.on("data", (d: Buffer) => (log += d));
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    let out = "";
    proc.stdout!.on("data", (d: Buffer) => {
      out += d;
      if (out.includes("serving")) resolve();
    });
    proc.once("exit", (code) => reject(new Error(`serve exited with ${code}:\n${log.slice(-3000)}`)));
  });
  return {
    proc,
    address: `127.0.0.1:${port}`,
    metricsPort,
    log: () => log,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
      await exited;
    },
  };
}
