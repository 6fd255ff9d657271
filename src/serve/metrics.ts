/**
 * Prometheus metrics of a server (prom-client), served on /metrics. Names follow Prometheus
 * conventions: a `strata_` prefix, units in the name, `_total` on counters.
 */
import { createServer, type Server } from "node:http";
import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from "prom-client";
import { status } from "@grpc/grpc-js";
import type { EncodeCounters } from "./response-encoder.js";
import { listenError } from "../shared/errors.js";
import { INGEST_STATES, type IngestState } from "../ingest/ingest-status.js";

/** What the server reads of an ingestor's status (src/ingest/ingest-status.ts has the rest). */
export interface IngestFreshness {
  readonly state: IngestState;
  readonly kafkaLag: number | null;
  readonly eventTimeLagMs: number | null;
  readonly lastPublishMs: number | null;
  readonly counters: { readonly deadLetters: number };
}

const grpcStatusName = (code: number): string => status[code] ?? String(code);

export class ServerMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: "strata_grpc_requests_total",
    help: "gRPC requests (stream messages count one each) by method and status code",
    labelNames: ["method", "code"] as const,
    registers: [this.registry],
    // Counted in the latency tallies on the hot path; set from them when scraped.
    collect: () => {
      this.requests.reset();
      for (const [method, tally] of this.latency.tallies)
        tally.codes.forEach((n, code) => {
          if (n > 0) this.requests.inc({ method, code: grpcStatusName(code) }, n);
        });
    },
  });
  readonly latency = new RequestLatency(
    "strata_grpc_request_duration_seconds",
    "Time to answer one request or stream message, by method",
    [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1],
  );
  /** Row counts are kept as plain numbers on the read path and read at scrape time. */
  readonly rows = new Gauge({
    name: "strata_rows_total",
    help: "Rows served since start, by table and row status (a counter, exported at scrape time)",
    labelNames: ["table", "status"] as const,
    registers: [this.registry],
  });
  readonly ingestKafkaLag = new Gauge({
    name: "strata_ingest_kafka_lag_messages",
    help: "Messages in Kafka not yet in a published version, by table (when this process ingests)",
    labelNames: ["table"] as const,
    registers: [this.registry],
  });
  readonly ingestEventTimeLag = new Gauge({
    name: "strata_ingest_event_time_lag_seconds",
    help: "Now minus the newest event time in the version ingest builds on, by table",
    labelNames: ["table"] as const,
    registers: [this.registry],
  });
  readonly ingestDeadLetters = new Gauge({
    name: "strata_ingest_dead_letters_total",
    help: "Delta events sent to the dead-letter topic since start, by table (a counter)",
    labelNames: ["table"] as const,
    registers: [this.registry],
  });
  readonly ingestState = new Gauge({
    name: "strata_ingest_state",
    help: "1 for the state each table's ingestor is in (pinned and blocked publish nothing), 0 for the others",
    labelNames: ["table", "state"] as const,
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
  // As Prometheus reports its own config reloads; with workers, the least successful and the
  // latest success of any of them.
  readonly configReloadSuccessful = new Gauge({
    name: "strata_config_last_reload_successful",
    help: "1 when the last reload of the table config (SIGHUP) was applied, 0 when it was refused",
    registers: [this.registry],
    aggregator: "min",
  });
  readonly configReloadTime = new Gauge({
    name: "strata_config_last_reload_success_timestamp_seconds",
    help: "When the table config in use was read (at start or by the last reload that was applied)",
    registers: [this.registry],
    aggregator: "max",
  });

  constructor(rowCounts?: () => Iterable<[string, EncodeCounters]>) {
    collectDefaultMetrics({ register: this.registry, prefix: "strata_" });
    this.configReloaded(true);
    // A duck-typed metric (name, help, type, get, reset): what the registry reads of one.
    this.registry.registerMetric(this.latency as unknown as Metric);
    if (rowCounts) {
      const rows = this.rows;
      (rows as unknown as { collect: () => void }).collect = () => {
        rows.reset(); // a table dropped by a config reload is no longer reported
        for (const [table, c] of rowCounts()) {
          rows.set({ table, status: "found" }, c.found);
          rows.set({ table, status: "not_found" }, c.notFound);
          rows.set({ table, status: "outside_max_age" }, c.outsideMaxAge);
          rows.set({ table, status: "data_loss" }, c.dataLoss);
        }
      };
    }
  }

  /** Exports ingest freshness of `tables`, read from `status` at scrape time. */
  exportIngest(tables: readonly string[], status: (table: string) => IngestFreshness | null): void {
    // Only the tables ingested now: a config reload may have dropped some since the last scrape.
    const read = (gauge: Gauge, set: (table: string, s: IngestFreshness) => void) => {
      (gauge as unknown as { collect: () => void }).collect = () => {
        gauge.reset();
        for (const t of tables) {
          const s = status(t);
          if (s) set(t, s);
        }
      };
    };
    read(this.ingestKafkaLag, (t, s) => {
      if (s.kafkaLag !== null) this.ingestKafkaLag.set({ table: t }, s.kafkaLag);
    });
    read(this.ingestEventTimeLag, (t, s) => {
      if (s.eventTimeLagMs !== null) this.ingestEventTimeLag.set({ table: t }, s.eventTimeLagMs / 1000);
    });
    read(this.ingestDeadLetters, (t, s) => this.ingestDeadLetters.set({ table: t }, s.counters.deadLetters));
    read(this.ingestState, (t, s) => {
      for (const state of INGEST_STATES) this.ingestState.set({ table: t, state }, state === s.state ? 1 : 0);
    });
  }

  /** The table config was read again (SIGHUP): applied, or refused and the old one kept. */
  configReloaded(applied: boolean): void {
    this.configReloadSuccessful.set(applied ? 1 : 0);
    if (applied) this.configReloadTime.set(Date.now() / 1000);
  }

  /** One request or stream message answered: plain additions, turned into samples at scrape time. */
  observeRequest(method: string, code: number, seconds: number): void {
    this.latency.tally(method).add(code, seconds);
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
    return { server, port: await listenOn(server, host, port, "/metrics") };
  }
}

/** Starts `server` listening; resolves with the bound port, or rejects with listenError's reason. */
export async function listenOn(server: Server, host: string, port: number, what: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err) => reject(listenError(what, `${host}:${port}`, err)));
    server.listen(port, host, resolve);
  });
  const address = server.address();
  return typeof address === "object" && address ? address.port : port;
}

/** Requests of one method: counts by status code and a latency histogram, in plain arrays. */
class RequestTally {
  /** By gRPC status code (0-16; anything else counts as UNKNOWN). */
  readonly codes = new Float64Array(17);
  /**
   * Observations per bucket, not cumulative: slot b holds those in (bound b-1, bound b], the last
   * slot those above every bound.
   */
  readonly buckets: Float64Array;
  sum = 0;

  constructor(private readonly upperBounds: readonly number[]) {
    this.buckets = new Float64Array(upperBounds.length + 1);
  }

  add(code: number, seconds: number): void {
    this.codes[code >= 0 && code <= 16 ? code : status.UNKNOWN]!++;
    const bounds = this.upperBounds;
    let b = 0;
    while (b < bounds.length && seconds > bounds[b]!) b++;
    this.buckets[b]!++;
    this.sum += seconds;
  }
}

type Sample = { labels: Record<string, string | number>; value: number; metricName: string };

/**
 * The request-latency histogram, kept as RequestTally per method and exported in prom-client's
 * shape when scraped. prom-client's Histogram.observe validates and hashes its labels on every
 * call, which with the request counter's inc was about 4% of the server's CPU at 100-key batches.
 */
class RequestLatency {
  readonly type = "histogram";
  readonly aggregator = "sum";
  readonly tallies = new Map<string, RequestTally>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly upperBounds: readonly number[],
  ) {}

  tally(method: string): RequestTally {
    let t = this.tallies.get(method);
    if (!t) this.tallies.set(method, (t = new RequestTally(this.upperBounds)));
    return t;
  }

  get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Sample[] }> {
    const values: Sample[] = [];
    for (const [method, t] of this.tallies) {
      let below = 0;
      this.upperBounds.forEach((le, b) => {
        below += t.buckets[b]!;
        values.push({ labels: { le, method }, value: below, metricName: `${this.name}_bucket` });
      });
      const count = below + t.buckets[this.upperBounds.length]!;
      values.push({ labels: { le: "+Inf", method }, value: count, metricName: `${this.name}_bucket` });
      values.push({ labels: { method }, value: t.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { method }, value: count, metricName: `${this.name}_count` });
    }
    const { name, help, type, aggregator } = this;
    return Promise.resolve({ name, help, type, aggregator, values });
  }

  reset(): void {
    this.tallies.clear();
  }
}
