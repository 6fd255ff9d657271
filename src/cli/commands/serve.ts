/**
 * strata serve: the gRPC server over the data dir, with N serving workers sharing the mapped pages
 * through the page cache (node:cluster: the primary hands connections to the workers), and the
 * ingestor in the primary when Kafka is configured (or the fleet membership, with Redis).
 * SIGHUP reads the table config again and applies it to all of them (decision 30).
 */
import cluster from "node:cluster";
import { format } from "node:util";
import { credentials, setLogger, type ChannelCredentials } from "@grpc/grpc-js";
import type { Command } from "commander";
import { pino } from "pino";
import { AggregatorRegistry } from "prom-client";
import { createServer, type Server as HttpServer } from "node:http";
import { listenOn } from "../../serve/metrics.js";
import { EXIT } from "../exit-codes.js";
import type { CliContext } from "../context.js";
import { StrataServer } from "../../serve/strata-server.js";
import { joinFleet } from "../../control/join-fleet.js";
import { loadTablesConfig, type TablesConfig } from "../../config/tables-config.js";
import type { Logger } from "../../shared/logger.js";
import { errorMessage, UsageError } from "../../shared/errors.js";
import { readCertificate } from "../../shared/tls-files.js";

interface ServeOptions {
  port?: string;
  host?: string;
  metricsPort?: string;
  workers: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
}

/** Starts the Kafka ingestor of `tables` when Kafka is configured (cli/ingest-wiring.ts). */
type StartIngest = (
  c: CliContext,
  tables: TablesConfig,
  logger: Logger,
  server: StrataServer | null,
) => Promise<Stoppable | null>;

interface Stoppable {
  stop(): Promise<void>;
}

export function registerServeCommand(
  program: Command,
  ctx: (cmd: Command) => CliContext,
  startIngest: StartIngest,
): void {
  program
    .command("serve")
    .description("serve the tables over gRPC (and run the ingestor when STRATA_KAFKA_BROKERS is set)")
    .option("--host <host>", "listen address (env STRATA_HOST)")
    .option("--port <port>", "gRPC port (env STRATA_PORT, default 50051)")
    .option(
      "--metrics-port <port>",
      "Prometheus /metrics port, or off (env STRATA_METRICS_PORT, default 9464)",
    )
    .option("--workers <n>", "serving worker processes", "1")
    .option("--tls-cert <pem>", "serve TLS with this certificate chain")
    .option("--tls-key <pem>", "and this private key")
    .option(
      "--tls-ca <pem>",
      "with --tls-cert, in a fleet: the CA (or self-signed) certificates to trust when fetching segments from other nodes (default: the --tls-cert chain)",
    )
    .action(async (o: ServeOptions, cmd: Command) => {
      const workers = Number(o.workers);
      if (!Number.isInteger(workers) || workers < 1 || workers > 64)
        throw new UsageError(`--workers must be 1 to 64 (got "${o.workers}")`);
      if (Boolean(o.tlsCert) !== Boolean(o.tlsKey))
        throw new UsageError("--tls-cert and --tls-key go together");
      if (o.tlsCa && !o.tlsCert) throw new UsageError("--tls-ca goes with --tls-cert");
      // A fleet that serves TLS fetches segments from its nodes over TLS too.
      const peerCredentials = o.tlsCert
        ? credentials.createSsl(readCertificate(o.tlsCa ?? o.tlsCert, o.tlsCa ? "--tls-ca" : "--tls-cert"))
        : undefined;
      const fleetTls = peerCredentials ? { peerCredentials } : {};
      const c = ctx(cmd);
      const logger = pino(
        { name: "strata", level: process.env.STRATA_LOG_LEVEL ?? "info" },
        pino.destination(2),
      ) as unknown as Logger;
      void c.tables; // validate the table config before forking anything
      // grpc-js's own messages ("E No address added ...") go to the log, not bare to stderr.
      const grpcLog = logger.child({ component: "grpc-js" });
      setLogger({
        error: (...args: unknown[]) => grpcLog.warn({}, format(...args)),
        info: (...args: unknown[]) => grpcLog.info({}, format(...args)),
        debug: (...args: unknown[]) => grpcLog.debug({}, format(...args)),
      });

      // From here SIGHUP no longer ends the process: one that comes while the server starts is
      // applied once it serves.
      const reloads = new Reloads(logger);
      if (workers > 1 && cluster.isPrimary) {
        await runPrimary(c, workers, logger, startIngest, fleetTls, reloads);
        return;
      }
      const inWorker = cluster.isWorker;
      const server = new StrataServer({
        config: inWorker ? { ...c.config, metricsPort: null } : c.config,
        tables: c.tables,
        logger: logger.child({ worker: inWorker ? cluster.worker?.id : 0 }),
        tls: o.tlsCert && o.tlsKey ? { certPath: o.tlsCert, keyPath: o.tlsKey } : null,
      });
      if (inWorker) {
        new AggregatorRegistry(); // installs the worker's answer to the primary's metrics requests
        AggregatorRegistry.setRegistries([server.metrics.registry]);
      }
      try {
        await server.start();
      } catch (err) {
        cluster.worker?.disconnect(); // or its channel to the primary keeps it alive
        throw err;
      }
      process.send?.(WORKER_READY);
      const control = inWorker ? null : new ControlPlane(c, logger, server, startIngest, fleetTls);
      await control?.start(c.tables);
      if (!inWorker && !c.json)
        process.stdout.write(
          `strata: serving ${[...server.tables.keys()].join(", ")} on ${c.config.host}:${server.port}\n`,
        );
      reloads.start(async () => {
        const tables = await reloadServer(c, server, logger);
        if (tables) await control?.restart(tables);
      });
      await untilSignal();
      reloads.stop();
      logger.info({}, "shutting down");
      await control?.stop();
      await server.stop();
      // A worker's IPC channel to the primary would keep it alive: leave the cluster.
      cluster.worker?.disconnect();
    });
}

async function runPrimary(
  c: CliContext,
  workers: number,
  logger: Logger,
  startIngest: StartIngest,
  fleetTls: { peerCredentials?: ChannelCredentials },
  reloads: Reloads,
): Promise<void> {
  // /metrics of every worker, summed, on the primary's metrics port.
  const aggregator = new AggregatorRegistry();
  const { host, metricsPort } = c.config;
  let metrics: HttpServer | null = null;
  if (metricsPort !== null) {
    metrics = createServer((req, res) => {
      if (req.url !== "/metrics") return void res.writeHead(404).end();
      aggregator.clusterMetrics().then(
        (text) => res.writeHead(200, { "content-type": aggregator.contentType }).end(text),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
    });
    await listenOn(metrics, host, metricsPort, "/metrics");
  }
  // A worker that cannot start (its port taken) has said why and exits: so does the primary,
  // with its code, instead of starting it again and again. Later deaths are replaced.
  const starting = Array.from({ length: workers }, () => cluster.fork()).map(
    (w) =>
      new Promise<number | null>((resolve) => {
        w.on("message", (m) => m === WORKER_READY && resolve(null));
        w.once("exit", (code) => resolve(code || EXIT.INTERNAL));
      }),
  );
  const failed = (await Promise.all(starting)).find((code) => code !== null);
  if (failed !== undefined) {
    await stopWorkers();
    metrics?.close();
    process.exitCode = failed;
    return;
  }
  let stopping = false;
  const signalled = untilSignal(() => (stopping = true));
  cluster.on("exit", (worker, code, signal) => {
    if (stopping) return;
    logger.error({ worker: worker.id, code, signal }, "worker died: starting another");
    cluster.fork();
  });
  const control = new ControlPlane(c, logger, null, startIngest, fleetTls);
  await control.start(c.tables);
  if (!c.json)
    process.stdout.write(`strata: ${workers} workers serving on ${c.config.host}:${c.config.port}\n`);
  // Each worker reads the config again itself (and says whether it applied it); the primary
  // restarts ingest or the fleet membership with what it reads.
  reloads.start(async () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.send(WORKER_RELOAD);
    const tables = readTablesForReload(c, logger);
    if (tables) await control.restart(tables);
  });
  await signalled;
  reloads.stop();
  await control.stop();
  await stopWorkers();
  metrics?.close();
}

/** What a serving worker tells the primary once it serves. */
const WORKER_READY = "strata:worker-ready";
/** What the primary tells its workers on SIGHUP. */
const WORKER_RELOAD = "strata:reload";

/**
 * What runs beside serving in the process that owns the data dir: the fleet membership when Redis
 * is configured (it runs ingest under the writer lease), else ingest when Kafka is. A config
 * reload restarts it with the new tables: ingest publishes what it holds and resumes from the
 * offsets in the manifests, so nothing is lost or applied twice.
 */
class ControlPlane {
  private running: Stoppable | null = null;
  private tables: TablesConfig | null = null;

  constructor(
    private readonly c: CliContext,
    private readonly logger: Logger,
    private readonly server: StrataServer | null,
    private readonly startIngest: StartIngest,
    private readonly fleetTls: { peerCredentials?: ChannelCredentials },
  ) {}

  async start(tables: TablesConfig): Promise<void> {
    const fleet = await joinFleet({
      config: this.c.config,
      tables,
      server: this.server,
      logger: this.logger,
      ...this.fleetTls,
    });
    this.running = fleet ?? (await this.startIngest(this.c, tables, this.logger, this.server));
    this.tables = tables;
  }

  /**
   * Runs again with `tables` when they differ from the tables it runs with. When ingest refuses
   * them (two tables on one topic, a table another process ingests), it goes on with the previous
   * ones and says why.
   */
  async restart(tables: TablesConfig): Promise<void> {
    const previous = this.tables;
    if (this.running === null || !previous || JSON.stringify(tables) === JSON.stringify(previous)) return;
    await this.stop();
    try {
      await this.start(tables);
    } catch (err) {
      this.logger.error(
        { err: errorMessage(err) },
        "ingest refused the reloaded table config: going on with the previous one",
      );
      await this.start(previous).catch((again: unknown) =>
        this.logger.error({ err: errorMessage(again) }, "ingest stopped: it cannot start again"),
      );
    }
  }

  async stop(): Promise<void> {
    await this.running?.stop();
    this.running = null;
  }
}

/**
 * SIGHUP (and, in a worker, the primary's word) calls the reload given to {@link start}, one call
 * at a time; one that comes before start (while the server starts) is applied at start.
 */
class Reloads {
  private reload: (() => Promise<void>) | null = null;
  private pending = false;
  private queue = Promise.resolve();

  constructor(private readonly logger: Logger) {
    process.on("SIGHUP", this.signalled);
    if (cluster.isWorker) process.on("message", this.told);
  }

  start(reload: () => Promise<void>): void {
    this.reload = reload;
    if (this.pending) this.signalled();
  }

  stop(): void {
    process.off("SIGHUP", this.signalled);
    process.off("message", this.told);
  }

  private readonly signalled = (): void => {
    const reload = this.reload;
    if (!reload) {
      this.pending = true;
      return;
    }
    this.queue = this.queue
      .then(reload)
      .catch((err: unknown) => this.logger.error({ err: errorMessage(err) }, "reload failed"));
  };

  private readonly told = (m: unknown): void => {
    if (m === WORKER_RELOAD) this.signalled();
  };
}

/** The table config read again, or null (logged) when it cannot be read or is not valid. */
function readTablesForReload(c: CliContext, logger: Logger): TablesConfig | null {
  try {
    return loadTablesConfig(c.config.tablesConfigPath);
  } catch (err) {
    logger.error({ err: errorMessage(err) }, "config reload refused: going on with the tables as before");
    return null;
  }
}

/** Reads the table config again and serves it; the tables, or null when it was refused. */
async function reloadServer(
  c: CliContext,
  server: StrataServer,
  logger: Logger,
): Promise<TablesConfig | null> {
  let tables = readTablesForReload(c, logger);
  if (tables) {
    try {
      logger.info({ ...(await server.applyTables(tables)) }, "config reloaded");
    } catch (err) {
      logger.error({ err: errorMessage(err) }, "config reload refused: going on with the tables as before");
      tables = null;
    }
  }
  server.metrics.configReloaded(tables !== null);
  return tables;
}

/** SIGTERM to every live worker; resolves once all have exited. */
async function stopWorkers(): Promise<void> {
  const exits = Object.values(cluster.workers ?? {}).map(
    (w) =>
      new Promise((resolve) =>
        w?.isDead() ? resolve(null) : (w?.once("exit", resolve), w?.process.kill("SIGTERM")),
      ),
  );
  await Promise.all(exits);
}

/** Resolves on SIGINT or SIGTERM; `onSignal` runs at once, in the signal handler. */
function untilSignal(onSignal?: () => void): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      process.off("SIGINT", done);
      process.off("SIGTERM", done);
      onSignal?.();
      resolve();
    };
    process.on("SIGINT", done);
    process.on("SIGTERM", done);
  });
}
