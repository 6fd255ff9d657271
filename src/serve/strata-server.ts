/**
 * A serving process: loads every configured table, serves FeatureStore with health and
 * reflection, follows `current` of each table (chokidar on the table dir, readlink as the truth,
 * and a periodic readlink as a backstop), and exposes Prometheus metrics.
 */
import { EventEmitter, setMaxListeners } from "node:events";
import { Server, ServerCredentials, type ServiceDefinition } from "@grpc/grpc-js";
import { HealthImplementation, protoPath as healthProtoPath } from "grpc-health-check";
import { loadSync } from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { watch, type FSWatcher } from "chokidar";
import type { Server as HttpServer } from "node:http";
import type { Config } from "../config/config.js";
import type { TablesConfig } from "../config/tables-config.js";
import { MappedSegmentCache } from "../storage/mapped-segment.js";
import { ServedTable, type VersionEvent } from "./served-table.js";
import { createFeatureService } from "./feature-service.js";
import { installMessageFraming } from "./message-framing.js";
import { serveDirectly, unaryAsBidi } from "./direct-bidi.js";
import { ServerMetrics, type IngestFreshness } from "./metrics.js";
import { FEATURE_STORE_PROTO, PROTO_LOADER_OPTIONS, SERVICE_NAME, loadServerProto } from "./proto.js";
import { FLEET_PROTO, addSegmentFetchService } from "./segment-fetch-service.js";
import { silentLogger, type Logger } from "../shared/logger.js";
import { errorMessage, listenError } from "../shared/errors.js";
import { readCertificate, readPrivateKey } from "../shared/tls-files.js";

export interface StrataServerOptions {
  config: Config;
  tables: TablesConfig;
  logger?: Logger;
  /** How often `current` is re-read in case a watch event was missed. */
  backstopIntervalMs?: number;
  /** Largest response message; bigger ones are RESOURCE_EXHAUSTED. */
  maxResponseBytes?: number;
  /** TLS: PEM file paths; plaintext when absent. */
  tls?: { certPath: string; keyPath: string } | null;
}

/** Makes a table's directory if it is new and removes what a crash left in it. */
function prepare(table: ServedTable): void {
  table.store.ensureLayout();
  table.store.cleanLeftovers();
}

/** What a config reload changed in the served tables (StrataServer.applyTables). */
export interface TableChanges {
  added: string[];
  removed: string[];
  changed: string[];
}

export type Transport = "direct" | "grpc-js";

export const DEFAULT_BACKSTOP_INTERVAL_MS = 1000;
export const DEFAULT_MAX_RESPONSE_BYTES = 64 << 20;
export const DEFAULT_MAX_REQUEST_BYTES = 4 << 20;

export class StrataServer {
  readonly events = new EventEmitter();
  readonly tables = new Map<string, ServedTable>();
  readonly metrics = new ServerMetrics(() => [...this.tables].map(([name, t]) => [name, t.rowCounts]));
  private readonly grpc: Server;
  private readonly health = new HealthImplementation({ "": "NOT_SERVING", [SERVICE_NAME]: "NOT_SERVING" });
  private readonly cache = new MappedSegmentCache();
  private readonly stopping = new AbortController();
  private readonly logger: Logger;
  private readonly watchers = new Map<string, FSWatcher>();
  private backstop: NodeJS.Timeout | null = null;
  private reloads: Promise<unknown> = Promise.resolve();
  private metricsServer: HttpServer | null = null;
  port = 0;
  metricsPort = 0;
  /** What serves GetFeatures and StreamFeatures: Strata's own HTTP/2 handling or grpc-js's (decision 32). */
  transport: Transport = "grpc-js";
  /** Ingest freshness per table, when this process also ingests (see attachIngest). */
  private ingestStatus: ((table: string) => IngestFreshness | null) | null = null;

  constructor(private readonly options: StrataServerOptions) {
    // Every open stream, watch and scan listens for the stop: more than Node's warning bound of 10.
    setMaxListeners(0, this.stopping.signal);
    this.logger = options.logger ?? silentLogger;
    this.events.setMaxListeners(0);
    this.grpc = new Server({
      "grpc.max_receive_message_length": DEFAULT_MAX_REQUEST_BYTES,
      "grpc.max_send_message_length": options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES,
      "grpc-node.flow_control_window": 1 << 20,
    });
    for (const schema of options.tables.tables) {
      this.tables.set(schema.name, new ServedTable(schema, options.config.dataDir, this.cache, this.events));
    }
    this.events.on("version", (e: VersionEvent) => this.onVersionEvent(e));
  }

  /**
   * Loads the tables, binds the port, starts watching; resolves once requests can be served. When
   * it fails (a port in use), what it had started is stopped again, so that nothing keeps the
   * process alive.
   */
  async start(): Promise<void> {
    try {
      await this.open();
    } catch (err) {
      await this.stop(0).catch(() => undefined);
      throw err;
    }
  }

  private async open(): Promise<void> {
    if (!installMessageFraming()) {
      this.logger.warn(
        { component: "grpc" },
        "this grpc-js has no serializeMessage to wrap: responses are copied into their frames",
      );
    }
    const pkg = loadServerProto();
    const service = pkg[SERVICE_NAME] as ServiceDefinition;
    const maxResponseBytes = this.options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    const features = createFeatureService({
      tables: this.tables,
      events: this.events,
      metrics: this.metrics,
      logger: this.logger.child({ component: "grpc" }),
      maxKeysPerRequest: this.options.config.maxKeysPerRequest,
      maxResponseBytes,
      authToken: this.options.config.authToken,
      stopping: this.stopping.signal,
      freshness: (table) => {
        const s = this.ingestStatus?.(table) ?? null;
        return s ? { kafkaLag: s.kafkaLag ?? -1, lastPublishMs: s.lastPublishMs ?? 0 } : null;
      },
    });
    this.grpc.addService(service, features);
    // Before bindAsync: grpc-js binds its per-stream handlers to each port it binds.
    this.transport = this.options.config.grpcDirect
      ? this.serveDirectly(service, features, maxResponseBytes)
      : "grpc-js";
    addSegmentFetchService(this.grpc, { tables: this.tables, authToken: this.options.config.authToken });
    this.health.addToServer(this.grpc);
    // Every service this server answers, so that `grpcurl list` shows them all; in one load,
    // since reflection keeps one descriptor a package, and two loads of strata.v1 would make two.
    const described = loadSync([FEATURE_STORE_PROTO, FLEET_PROTO, healthProtoPath], PROTO_LOADER_OPTIONS);
    new ReflectionService(described).addToServer(this.grpc);

    for (const table of this.tables.values()) {
      prepare(table);
      this.watch(table);
    }
    // Health turns SERVING below, once every table has loaded (or refused) its current version.
    await Promise.all([...this.tables.values()].map((table) => table.refresh()));
    const interval = this.options.backstopIntervalMs ?? DEFAULT_BACKSTOP_INTERVAL_MS;
    this.backstop = setInterval(() => void this.refreshAll(), interval);
    this.backstop.unref();

    const { host, port } = this.options.config;
    const tls = this.options.tls;
    const credentials = tls
      ? ServerCredentials.createSsl(
          null,
          [
            {
              cert_chain: readCertificate(tls.certPath, "--tls-cert"),
              private_key: readPrivateKey(tls.keyPath, "--tls-key"),
            },
          ],
          false,
        )
      : ServerCredentials.createInsecure();
    this.port = await new Promise<number>((resolve, reject) =>
      this.grpc.bindAsync(`${host}:${port}`, credentials, (err, bound) =>
        err ? reject(listenError("gRPC", `${host}:${port}`, err)) : resolve(bound),
      ),
    );
    if (this.options.config.metricsPort !== null) {
      const m = await this.metrics.listen(host, this.options.config.metricsPort);
      this.metricsServer = m.server;
      this.metricsPort = m.port;
    }
    this.health.setStatus("", "SERVING");
    this.health.setStatus(SERVICE_NAME, "SERVING");
    this.logger.info(
      {
        port: this.port,
        metricsPort: this.metricsPort,
        transport: this.transport,
        tables: [...this.tables.keys()],
      },
      "serving",
    );
  }

  /** GetFeatures and StreamFeatures on HTTP/2 directly (decision 32); "grpc-js" if this grpc-js cannot. */
  private serveDirectly(
    service: ServiceDefinition,
    features: ReturnType<typeof createFeatureService>,
    maxResponseBytes: number,
  ): Transport {
    const served = serveDirectly(
      this.grpc,
      [
        { definition: service.StreamFeatures!, handler: features.StreamFeatures },
        { definition: service.GetFeatures!, handler: unaryAsBidi(features.GetFeatures) },
      ],
      { maxRequestBytes: DEFAULT_MAX_REQUEST_BYTES, maxResponseBytes },
    );
    if (served) return "direct";
    this.logger.warn(
      { component: "grpc" },
      "this grpc-js has no per-stream handler to wrap: GetFeatures and StreamFeatures go through grpc-js's calls",
    );
    return "grpc-js";
  }

  /**
   * Shows an ingestor's freshness in DescribeTable and /metrics. Called by `strata serve` when it
   * runs the ingestor in the same process.
   */
  attachIngest(status: (table: string) => IngestFreshness | null): void {
    this.ingestStatus = status;
    this.metrics.exportIngest([...this.tables.keys()], status);
  }

  /**
   * Serves `tables` from now on (a config reload, decision 30), as a restart with them would but
   * without one: a table added is served once its current version is open (unknown to requests
   * until then); a table removed is unknown from now on; a table whose schema changed is opened
   * again under the new one and swapped in once its current version is open, so that requests
   * keep being answered meanwhile. Requests in flight finish on the snapshot they hold.
   */
  applyTables(tables: TablesConfig): Promise<TableChanges> {
    // One reload at a time, in order: the last one asked for is what is served.
    const run = this.reloads.then(() => this.reload(tables));
    this.reloads = run.catch(() => undefined);
    return run;
  }

  private async reload(tables: TablesConfig): Promise<TableChanges> {
    const changes: TableChanges = { added: [], removed: [], changed: [] };
    // The tables to open, their directories ready: a directory that cannot be made (permissions)
    // refuses the whole reload before anything changed.
    const opening: ServedTable[] = [];
    for (const schema of tables.tables) {
      const old = this.tables.get(schema.name);
      if (old && JSON.stringify(old.schema) === JSON.stringify(schema)) continue;
      (old ? changes.changed : changes.added).push(schema.name);
      const table = new ServedTable(
        schema,
        this.options.config.dataDir,
        this.cache,
        this.events,
        old?.rowCounts,
      );
      prepare(table);
      opening.push(table);
    }
    const wanted = new Set(tables.tables.map((t) => t.name));
    for (const name of [...this.tables.keys()]) {
      if (wanted.has(name)) continue;
      this.tables.delete(name);
      void this.watchers.get(name)?.close();
      this.watchers.delete(name);
      this.metrics.servingVersion.remove({ table: name });
      changes.removed.push(name);
    }
    await Promise.all(
      opening.map(async (table) => {
        await table.refresh();
        this.watch(table);
        this.tables.set(table.schema.name, table);
        this.metrics.servingVersion.set({ table: table.schema.name }, table.servingVersion);
      }),
    );
    return changes;
  }

  /** Re-reads `current` of every table now (what the watchers and the backstop do). */
  async refreshAll(): Promise<void> {
    await Promise.all([...this.tables.values()].map((table) => table.refresh()));
  }

  /**
   * Stops taking calls, lets calls in flight finish for up to `graceMs` (streams are drained by
   * their clients ending them), then cuts what remains.
   */
  async stop(graceMs = 5000): Promise<void> {
    this.stopping.abort();
    this.health.setStatus("", "NOT_SERVING");
    this.health.setStatus(SERVICE_NAME, "NOT_SERVING");
    if (this.backstop) clearInterval(this.backstop);
    await Promise.all([...this.watchers.values()].map((w) => w.close()));
    this.watchers.clear();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.grpc.forceShutdown();
        resolve();
      }, graceMs);
      this.grpc.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    await new Promise<void>((resolve) =>
      this.metricsServer ? this.metricsServer.close(() => resolve()) : resolve(),
    );
  }

  /** Follows a table's `current` (in place of its predecessor's watch, after a reload). */
  private watch(table: ServedTable): void {
    void this.watchers.get(table.schema.name)?.close();
    // followSymlinks: false, or chokidar follows the old target and never sees the swap.
    const watcher = watch(table.store.dir, { depth: 0, followSymlinks: false, ignoreInitial: true });
    watcher.on("all", (_event, path) => {
      if (path.endsWith("/current")) void table.refresh();
    });
    watcher.on("error", (err) =>
      this.logger.warn(
        { table: table.schema.name, err: errorMessage(err) },
        "watch failed; the periodic check goes on",
      ),
    );
    this.watchers.set(table.schema.name, watcher);
  }

  private onVersionEvent(e: VersionEvent): void {
    this.metrics.versionEvents.inc({ table: e.table, type: e.type });
    const served = this.tables.get(e.table)?.servingVersion ?? 0;
    this.metrics.servingVersion.set({ table: e.table }, served);
    const log = e.type === "rejected" || e.type === "fallback" ? "error" : "info";
    this.logger[log](
      { table: e.table, type: e.type, version: e.version, previous: e.previousVersion, reason: e.reason },
      "version event",
    );
  }
}
