/**
 * strata serve: the gRPC server over the data dir, with N serving workers sharing the mapped pages
 * through the page cache (node:cluster: the primary hands connections to the workers), and the
 * ingestor in the primary when Kafka is configured.
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
import type { Logger } from "../../shared/logger.js";
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

export function registerServeCommand(
  program: Command,
  ctx: (cmd: Command) => CliContext,
  startIngest: (
    c: CliContext,
    logger: Logger,
    server: StrataServer | null,
  ) => Promise<{ stop(): Promise<void> } | null>,
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
        throw new RangeError(`--workers must be 1 to 64 (got "${o.workers}")`);
      if (Boolean(o.tlsCert) !== Boolean(o.tlsKey))
        throw new RangeError("--tls-cert and --tls-key go together");
      if (o.tlsCa && !o.tlsCert) throw new RangeError("--tls-ca goes with --tls-cert");
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

      if (workers > 1 && cluster.isPrimary) {
        await runPrimary(c, workers, logger, startIngest, fleetTls);
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
      // With STRATA_REDIS_URL the node joins the fleet, which runs ingest under the writer lease.
      const fleet = inWorker
        ? null
        : await joinFleet({ config: c.config, tables: c.tables, server, logger, ...fleetTls });
      const ingest = inWorker || fleet ? null : await startIngest(c, logger, server);
      if (!inWorker && !c.json)
        process.stdout.write(
          `strata: serving ${[...server.tables.keys()].join(", ")} on ${c.config.host}:${server.port}\n`,
        );
      await untilSignal();
      logger.info({}, "shutting down");
      await fleet?.stop();
      await ingest?.stop();
      await server.stop();
      // A worker's IPC channel to the primary would keep it alive: leave the cluster.
      cluster.worker?.disconnect();
    });
}

async function runPrimary(
  c: CliContext,
  workers: number,
  logger: Logger,
  startIngest: (
    c: CliContext,
    logger: Logger,
    server: StrataServer | null,
  ) => Promise<{ stop(): Promise<void> } | null>,
  fleetTls: { peerCredentials?: ChannelCredentials },
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
  const fleet = await joinFleet({ config: c.config, tables: c.tables, server: null, logger, ...fleetTls });
  const ingest = fleet ? null : await startIngest(c, logger, null);
  if (!c.json)
    process.stdout.write(`strata: ${workers} workers serving on ${c.config.host}:${c.config.port}\n`);
  await signalled;
  await fleet?.stop();
  await ingest?.stop();
  await stopWorkers();
  metrics?.close();
}

/** What a serving worker tells the primary once it serves. */
const WORKER_READY = "strata:worker-ready";

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
