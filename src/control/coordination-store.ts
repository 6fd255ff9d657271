/**
 * The fleet's control plane as an interface (docs/fleet.md): writer leases with a fencing epoch,
 * the registry of published versions, the desired state of each table, node heartbeats, and
 * notifications. `RedisCoordinationStore` is the real one; `MemoryCoordinationStore` is the same
 * behaviour in one process, for tests. One behaviour suite runs against both.
 *
 * Every method may throw UnavailableError when the backing service cannot be reached; callers in
 * a serving node catch it and carry on (serving never depends on the control plane).
 */

/** Who holds (or asks for) a writer lease. `holder` is unique per process, `node` is the node id. */
export interface LeaseHolder {
  readonly holder: string;
  readonly node: string;
  /** Where other nodes fetch segments from this writer (host:port). */
  readonly address: string;
}

export interface LeaseInfo extends LeaseHolder {
  readonly epoch: number;
  /** Time left before it expires, ms. */
  readonly ttlMs: number;
}

/** One segment of an announced version, as its manifest lists it (what a follower fetches). */
export interface AnnouncedSegment {
  readonly uuid: string;
  readonly size: number;
  readonly body_crc32: number;
}

/** A version the table's writer published, as the registry holds it. */
export interface VersionAnnouncement {
  readonly table: string;
  readonly version: number;
  /** The MANIFEST exactly as the writer wrote it (UTF-8 JSON), and its SHA-256. */
  readonly manifest: string;
  readonly sha256: string;
  readonly segments: readonly AnnouncedSegment[];
  /** The announcing writer: its node id, fetch address and lease epoch. */
  readonly node: string;
  readonly address: string;
  readonly epoch: number;
  readonly announced_at_ms: number;
}

/**
 * What every node of the fleet should serve for a table. `follow`: the newest announced version
 * that is not rolled back (the writer publishes on). `pinned`: exactly `version` (after a fleet
 * rollback or pin; the writer publishes nothing).
 */
export interface DesiredState {
  readonly mode: "follow" | "pinned";
  /** The pinned version; null when following. */
  readonly version: number | null;
  /** Versions stepped back over: never served again unless a rollback --force names one. */
  readonly rolled_back: readonly number[];
  /** On leaving a pin: the writer replays Kafka from the version's offsets, or skips to the latest. */
  readonly resume_from: "version" | "latest";
  /** Grows with every change, so nodes can report which one they applied. */
  readonly generation: number;
  readonly updated_at_ms: number;
  /** Who asked (user@host of the CLI, or the writer that seeded it). */
  readonly by: string;
}

export type DesiredStateInput = Omit<DesiredState, "generation" | "updated_at_ms">;

/** What one node reports of one table in its heartbeat. */
export interface NodeTableStatus {
  /** The version its server serves (0 = none yet). */
  readonly serving: number;
  /** Where `current` points in its data dir (null = nothing). */
  readonly current: number | null;
  readonly pinned: boolean;
  /** The desired-state generation it last applied (0 = none). */
  readonly applied_generation: number;
  /** True while this node holds the table's writer lease. */
  readonly writer: boolean;
  readonly epoch: number | null;
  /** When the version it serves was created (its manifest's created_at_ms). */
  readonly version_created_at_ms: number | null;
  /** Ingest freshness, when this node runs the table's ingestor. */
  readonly ingest_lag: number | null;
  readonly last_publish_ms: number | null;
  /** The last reconcile error, if the node is stuck. */
  readonly error: string | null;
}

export interface NodeStatus {
  readonly node: string;
  /** writer: contends for writer leases; replica: only follows. */
  readonly role: "writer" | "replica";
  readonly address: string;
  readonly pid: number;
  readonly host: string;
  readonly started_at_ms: number;
  readonly heartbeat_at_ms: number;
  readonly tables: Readonly<Record<string, NodeTableStatus>>;
}

export type FleetEvent =
  | { readonly type: "announced"; readonly table: string; readonly version: number }
  | { readonly type: "desired"; readonly table: string; readonly generation: number }
  | { readonly type: "lease"; readonly table: string; readonly node: string; readonly epoch: number }
  | { readonly type: "node"; readonly node: string };

export interface Subscription {
  close(): Promise<void>;
}

export interface CoordinationStore {
  /**
   * Takes the table's writer lease if nobody holds it, with a new epoch (the fencing token),
   * above `minEpoch` whatever the counter says (the control plane may have lost its data: the
   * caller passes the highest epoch it has seen on disk). Returns the epoch, or null when held.
   */
  acquireLease(table: string, holder: LeaseHolder, ttlMs: number, minEpoch: number): Promise<number | null>;
  /** Extends the lease if `holder` still holds it with `epoch`; false when it was lost. */
  renewLease(table: string, holder: string, epoch: number, ttlMs: number): Promise<boolean>;
  /** Gives the lease up if still held by `holder` with `epoch`. */
  releaseLease(table: string, holder: string, epoch: number): Promise<void>;
  getLease(table: string): Promise<LeaseInfo | null>;

  /**
   * Records a published version and notifies subscribers, only while `epoch` is the table's
   * current fencing epoch: a writer that lost its lease gets false and nothing is recorded.
   */
  announceVersion(announcement: VersionAnnouncement): Promise<boolean>;
  getAnnouncement(table: string, version: number): Promise<VersionAnnouncement | null>;
  /** Announced versions of a table, ascending. */
  listAnnounced(table: string): Promise<number[]>;
  /** Drops announcements of versions the writer no longer retains (fenced like announce). */
  forgetVersions(table: string, versions: readonly number[], epoch: number): Promise<void>;

  getDesired(table: string): Promise<DesiredState | null>;
  /**
   * Sets the desired state with the next generation and notifies subscribers. With `ifAbsent`,
   * only when there is none (a writer seeding it); returns null then if one existed.
   */
  setDesired(
    table: string,
    desired: DesiredStateInput,
    options?: { ifAbsent?: boolean },
  ): Promise<DesiredState | null>;

  /** Tables the fleet knows (announced or with a desired state), sorted. */
  listTables(): Promise<string[]>;

  /** Registers or refreshes a node; it drops out of listNodes `ttlMs` after its last heartbeat. */
  heartbeat(status: NodeStatus, ttlMs: number): Promise<void>;
  listNodes(): Promise<NodeStatus[]>;
  removeNode(node: string): Promise<void>;

  /** Receives every fleet event until closed; resubscribes by itself after a reconnection. */
  subscribe(onEvent: (event: FleetEvent) => void): Promise<Subscription>;
  publish(event: FleetEvent): Promise<void>;

  /** Called with "up" when the store (re)connects and "down" when it loses its connection. */
  onConnection(listener: (state: "up" | "down") => void): void;
  readonly connected: boolean;
  close(): Promise<void>;
}

/** Redis key names of a fleet, in one place (docs/fleet.md lists them). */
export function fleetKeys(fleetName: string) {
  const p = `strata:${fleetName}:`;
  return {
    prefix: p,
    lease: (table: string) => `${p}lease:${table}`,
    epoch: (table: string) => `${p}epoch:${table}`,
    versions: (table: string) => `${p}versions:${table}`,
    desired: (table: string) => `${p}desired:${table}`,
    generation: (table: string) => `${p}generation:${table}`,
    tables: `${p}tables`,
    node: (node: string) => `${p}node:${node}`,
    nodes: `${p}nodes`,
    events: `${p}events`,
  };
}
