/**
 * A serving node in the fleet (docs/fleet.md): `strata serve` calls joinFleet when
 * STRATA_REDIS_URL is set. The node registers with an expiring heartbeat, subscribes to fleet
 * events, and runs one FleetTable per configured table: a writer-role node also contends for
 * each table's writer lease (and runs ingest for the tables it holds), a replica only follows.
 *
 * Serving never waits on any of this: joinFleet returns at once even when Redis is down, and
 * every control-plane failure is logged and retried (on a timer, on the next event, and after
 * every reconnection, when the node re-reads everything).
 */
import { hostname } from "node:os";
import { randomUUID } from "node:crypto";
import type { Config, FleetRole } from "../config/config.js";
import type { TablesConfig } from "../config/tables-config.js";
import type { StrataServer } from "../serve/strata-server.js";
import type { VersionEvent } from "../serve/served-table.js";
import { TableStore } from "../storage/table-store.js";
import { errorMessage } from "../shared/errors.js";
import { silentLogger, type Logger } from "../shared/logger.js";
import type { CoordinationStore, FleetEvent, NodeStatus, Subscription } from "./coordination-store.js";
import { FleetTable, type ServingView, type StartTableIngest } from "./fleet-table.js";
import { ingestUnderLease } from "./fleet-ingest.js";
import { leaseTiming } from "./lease.js";
import { RedisCoordinationStore } from "./redis-coordination-store.js";
import { SegmentFetcher } from "./segment-fetcher.js";
import { WriterLease } from "./writer-lease.js";
import type { ChannelCredentials } from "@grpc/grpc-js";

export interface JoinFleetOptions {
  readonly config: Config;
  readonly tables: TablesConfig;
  /** The local server (null in a cluster primary, whose workers serve). */
  readonly server: StrataServer | null;
  readonly logger?: Logger;
  /**
   * Starts ingest of a table when this node takes its lease; null = no ingest (an import-only
   * writer). @default Kafka ingest when STRATA_KAFKA_BROKERS is set (fleet-ingest.ts)
   */
  readonly startIngest?: StartTableIngest | null;
  /** Replaces the Redis store (tests). */
  readonly store?: CoordinationStore;
  /** How often every table is reconciled without a notification, ms. @default 1000 */
  readonly reconcileIntervalMs?: number;
  /** How this node reaches the others' SegmentFetch: TLS when the fleet serves TLS. @default plaintext */
  readonly peerCredentials?: ChannelCredentials;
}

export interface FleetNode {
  readonly nodeId: string;
  readonly role: "writer" | "replica";
  readonly address: string;
  /** This node's heartbeat as it would send it now. */
  status(): NodeStatus;
  /** Reconciles every table now (tests). */
  reconcile(): Promise<void>;
  /** Stops ingest (publishing what it holds), gives the leases up, leaves the registry. */
  stop(): Promise<void>;
}

/** The role a node takes: `auto` is writer when Kafka is configured (it can ingest), else replica. */
export function resolveRole(role: FleetRole, kafkaConfigured: boolean): "writer" | "replica" {
  return role === "auto" ? (kafkaConfigured ? "writer" : "replica") : role;
}

/** Joins the fleet when Redis is configured; null (one host, exactly as before) when it is not. */
export async function joinFleet(o: JoinFleetOptions): Promise<FleetNode | null> {
  const { config } = o;
  if (!o.store && config.redisUrl === null) return null;
  const logger = (o.logger ?? silentLogger).child({ component: "fleet" });
  const store =
    o.store ??
    new RedisCoordinationStore({
      url: config.redisUrl!,
      fleetName: config.fleetName,
      logger: o.logger ?? silentLogger,
    });
  const node = new Node(o, store, logger);
  await node.start();
  return node;
}

class Node implements FleetNode {
  readonly nodeId: string;
  readonly role: "writer" | "replica";
  readonly address: string;
  private readonly startedAtMs = Date.now();
  private readonly tables = new Map<string, FleetTable>();
  private readonly leases: WriterLease[] = [];
  private readonly fetchers = new Map<string, SegmentFetcher>();
  private readonly timers: NodeJS.Timeout[] = [];
  private subscription: Subscription | null = null;
  private heartbeatSoon: NodeJS.Timeout | null = null;
  private peerCache: { atMs: number; addresses: string[] } | null = null;
  private stopped = false;
  private readonly onVersion = (e: VersionEvent): void => {
    this.tables.get(e.table)?.schedule();
    this.scheduleHeartbeat();
  };

  constructor(
    private readonly o: JoinFleetOptions,
    private readonly store: CoordinationStore,
    private readonly log: Logger,
  ) {
    const { config, server } = o;
    const port = server?.port || config.port;
    this.nodeId = config.nodeId ?? `${hostname()}:${port}`;
    this.role = resolveRole(config.fleetRole, config.kafkaBrokers.length > 0);
    const host = config.host === "0.0.0.0" || config.host === "::" ? hostname() : config.host;
    this.address = config.advertiseAddress ?? `${host}:${port}`;
    const holder = { holder: `${this.nodeId}/${randomUUID()}`, node: this.nodeId, address: this.address };
    const serving: ServingView | null = server
      ? {
          servingVersion: (t) => server.tables.get(t)?.servingVersion ?? null,
          refresh: (t) => void server.tables.get(t)?.refresh(),
        }
      : null;
    const startIngest =
      o.startIngest === undefined
        ? ingestUnderLease({ config, tables: o.tables, logger: o.logger ?? silentLogger, server })
        : o.startIngest;
    for (const schema of o.tables.tables) {
      const tableStore = new TableStore(config.dataDir, schema.name);
      tableStore.ensureLayout();
      const lease =
        this.role === "writer"
          ? new WriterLease(
              store,
              schema.name,
              holder,
              leaseTiming(config.leaseTtlMs),
              () => tableStore.readState().max_writer_epoch,
              this.log.child({ table: schema.name, component: "lease" }),
            )
          : null;
      if (lease) {
        lease.on("acquired", () => this.scheduleHeartbeat());
        lease.on("lost", () => this.scheduleHeartbeat());
        this.leases.push(lease);
      }
      this.tables.set(
        schema.name,
        new FleetTable({
          schema,
          store: tableStore,
          coord: store,
          serving,
          self: { node: this.nodeId, address: this.address },
          lease,
          startIngest: this.role === "writer" ? startIngest : null,
          keepVersions: config.keepVersions,
          fetcherFor: (address) => this.fetcherFor(address),
          peers: () => this.peers(),
          onChange: () => this.scheduleHeartbeat(),
          catchUpTimeoutMs: config.leaseTtlMs,
          logger: this.log,
        }),
      );
    }
  }

  async start(): Promise<void> {
    const { config, server } = this.o;
    this.store.onConnection((state) => {
      if (state !== "up" || this.stopped) return;
      // Redis is back, perhaps empty: re-read and re-announce everything, and be seen at once.
      for (const t of this.tables.values()) t.forgetRegistry();
      for (const l of this.leases) void l.tick();
      this.reconcileAll();
      void this.heartbeat();
    });
    this.subscription = await this.store.subscribe((e) => this.onEvent(e));
    server?.events.on("version", this.onVersion);
    for (const l of this.leases) l.start();
    this.every(config.heartbeatIntervalMs, () => void this.heartbeat());
    this.every(this.o.reconcileIntervalMs ?? 1000, () => this.reconcileAll());
    this.reconcileAll();
    void this.heartbeat();
    this.log.info(
      {
        node: this.nodeId,
        role: this.role,
        address: this.address,
        fleet: config.fleetName,
        redis: this.store.connected,
      },
      "Joined the fleet",
    );
  }

  status(): NodeStatus {
    const tables: NodeStatus["tables"] = {};
    for (const [name, t] of this.tables) {
      try {
        (tables as Record<string, unknown>)[name] = t.status();
      } catch (err) {
        this.log.warn({ table: name, err: errorMessage(err) }, "Cannot read the table's status");
      }
    }
    return {
      node: this.nodeId,
      role: this.role,
      address: this.address,
      pid: process.pid,
      host: hostname(),
      started_at_ms: this.startedAtMs,
      heartbeat_at_ms: Date.now(),
      tables,
    };
  }

  async reconcile(): Promise<void> {
    await Promise.all([...this.tables.values()].map((t) => t.schedule()));
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    if (this.heartbeatSoon) clearTimeout(this.heartbeatSoon);
    this.o.server?.events.off("version", this.onVersion);
    await Promise.all([...this.tables.values()].map((t) => t.stop()));
    await Promise.all(this.leases.map((l) => l.stop(true)));
    await this.subscription?.close().catch(() => undefined);
    await this.store.removeNode(this.nodeId).catch(() => undefined);
    for (const f of this.fetchers.values()) f.close();
    if (!this.o.store) await this.store.close();
    this.log.info({ node: this.nodeId }, "Left the fleet");
  }

  private onEvent(e: FleetEvent): void {
    if (this.stopped) return;
    if (e.type === "lease") this.tables.get(e.table)?.observeEpoch(e.epoch);
    if (e.type === "announced" || e.type === "desired" || e.type === "lease")
      this.tables.get(e.table)?.schedule();
  }

  private reconcileAll(): void {
    if (this.stopped) return;
    for (const t of this.tables.values()) void t.schedule();
  }

  private async heartbeat(): Promise<void> {
    if (this.stopped || !this.store.connected) return;
    try {
      await this.store.heartbeat(this.status(), this.o.config.nodeTtlMs);
    } catch (err) {
      this.log.debug({ err: errorMessage(err) }, "Heartbeat failed");
    }
  }

  /** A heartbeat very soon (coalesced): what this node serves changed. */
  private scheduleHeartbeat(): void {
    if (this.heartbeatSoon || this.stopped) return;
    this.heartbeatSoon = setTimeout(() => {
      this.heartbeatSoon = null;
      void this.heartbeat();
    }, 10);
  }

  private every(ms: number, fn: () => void): void {
    const t = setInterval(fn, ms);
    t.unref();
    this.timers.push(t);
  }

  private fetcherFor(address: string): SegmentFetcher {
    let f = this.fetchers.get(address);
    if (!f) {
      f = new SegmentFetcher(address, {
        token: this.o.config.authToken,
        ...(this.o.peerCredentials ? { credentials: this.o.peerCredentials } : {}),
      });
      this.fetchers.set(address, f);
    }
    return f;
  }

  private async peers(): Promise<string[]> {
    if (this.peerCache && Date.now() - this.peerCache.atMs < 1000) return this.peerCache.addresses;
    const nodes = await this.store.listNodes();
    const addresses = nodes.filter((n) => n.node !== this.nodeId).map((n) => n.address);
    this.peerCache = { atMs: Date.now(), addresses };
    return addresses;
  }
}
