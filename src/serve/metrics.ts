/**
 * Prometheus metrics of a server (prom-client), served on /metrics. Names follow Prometheus
 * conventions: a `strata_` prefix, units in the name, `_total` on counters.
 */
import { createServer, type Server } from "node:http";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export class ServerMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: "strata_grpc_requests_total",
    help: "gRPC requests (stream messages count one each) by method and status code",
    labelNames: ["method", "code"] as const,
    registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: "strata_grpc_request_duration_seconds",
    help: "Time to answer one request or stream message, by method",
    labelNames: ["method"] as const,
    buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1],
    registers: [this.registry],
  });
  readonly rows = new Counter({
    name: "strata_rows_total",
    help: "Rows served, by table and row status",
    labelNames: ["table", "status"] as const,
    registers: [this.registry],
  });
  readonly servingVersion = new Gauge({
    name: "strata_serving_version",
    help: "The version each table is served from",
    labelNames: ["table"] as const,
    registers: [this.registry],
  });
  readonly versionEvents = new Counter({
    name: "strata_version_events_total",
    help: "Swaps, rollbacks, refusals and fallbacks, by table and type",
    labelNames: ["table", "type"] as const,
    registers: [this.registry],
  });
  readonly crcFailures = new Counter({
    name: "strata_crc_failures_total",
    help: "Records that failed their CRC check on read",
    labelNames: ["table"] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: "strata_" });
  }

  /** Serves /metrics on `port` (0 = any free port); resolves with the bound port. */
  async listen(host: string, port: number): Promise<{ server: Server; port: number }> {
    const server = createServer((req, res) => {
      if (req.url !== "/metrics") {
        res.writeHead(404).end("not found: try /metrics\n");
        return;
      }
      this.registry.metrics().then(
        (text) => res.writeHead(200, { "content-type": this.registry.contentType }).end(text),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, resolve);
    });
    const address = server.address();
    return { server, port: typeof address === "object" && address ? address.port : port };
  }
}
