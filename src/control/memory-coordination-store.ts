/**
 * The CoordinationStore in one process, with the Redis store's semantics (expiry on a clock,
 * the fenced announce, generations): for tests, and for reasoning about the protocol without a
 * server. Several "nodes" in one test share one instance; `setConnected(false)` makes every call
 * fail like an unreachable Redis, and `wipe()` loses every key like a restarted one.
 */
import { UnavailableError } from "../shared/errors.js";
import type {
  CoordinationStore,
  DesiredState,
  DesiredStateInput,
  FleetEvent,
  LeaseHolder,
  LeaseInfo,
  NodeStatus,
  Subscription,
  VersionAnnouncement,
} from "./coordination-store.js";

interface Expiring<T> {
  value: T;
  expiresAtMs: number;
}

export class MemoryCoordinationStore implements CoordinationStore {
  private leases = new Map<string, Expiring<LeaseHolder & { epoch: number }>>();
  private epochs = new Map<string, number>();
  private versions = new Map<string, Map<number, VersionAnnouncement>>();
  private desired = new Map<string, DesiredState>();
  private generations = new Map<string, number>();
  private tables = new Set<string>();
  private nodes = new Map<string, Expiring<NodeStatus>>();
  private readonly handlers = new Set<(event: FleetEvent) => void>();
  private readonly listeners: ((state: "up" | "down") => void)[] = [];
  private up = true;

  constructor(private readonly now: () => number = Date.now) {}

  get connected(): boolean {
    return this.up;
  }

  onConnection(listener: (state: "up" | "down") => void): void {
    this.listeners.push(listener);
  }

  /** Simulates Redis going away and coming back ("up" is reported to listeners). */
  setConnected(up: boolean): void {
    if (up === this.up) return;
    this.up = up;
    for (const l of this.listeners) l(up ? "up" : "down");
  }

  /** Simulates a Redis restart without persistence: every key is gone. */
  wipe(): void {
    this.leases = new Map();
    this.epochs = new Map();
    this.versions = new Map();
    this.desired = new Map();
    this.generations = new Map();
    this.tables = new Set();
    this.nodes = new Map();
  }

  async acquireLease(table: string, h: LeaseHolder, ttlMs: number, minEpoch: number): Promise<number | null> {
    this.check();
    if (this.live(this.leases, table)) return null;
    let epoch = (this.epochs.get(table) ?? 0) + 1;
    if (epoch <= minEpoch) epoch = minEpoch + 1;
    this.epochs.set(table, epoch);
    this.leases.set(table, {
      value: { holder: h.holder, node: h.node, address: h.address, epoch },
      expiresAtMs: this.now() + ttlMs,
    });
    this.tables.add(table);
    this.emit({ type: "lease", table, node: h.node, epoch });
    return epoch;
  }

  async renewLease(table: string, holder: string, epoch: number, ttlMs: number): Promise<boolean> {
    this.check();
    const lease = this.live(this.leases, table);
    if (!lease || lease.value.holder !== holder || lease.value.epoch !== epoch) return false;
    lease.expiresAtMs = this.now() + ttlMs;
    return true;
  }

  async releaseLease(table: string, holder: string, epoch: number): Promise<void> {
    this.check();
    const lease = this.live(this.leases, table);
    if (lease && lease.value.holder === holder && lease.value.epoch === epoch) this.leases.delete(table);
  }

  async getLease(table: string): Promise<LeaseInfo | null> {
    this.check();
    const lease = this.live(this.leases, table);
    return lease ? { ...lease.value, ttlMs: lease.expiresAtMs - this.now() } : null;
  }

  async announceVersion(a: VersionAnnouncement): Promise<boolean> {
    this.check();
    if ((this.epochs.get(a.table) ?? 0) !== a.epoch) return false;
    let byVersion = this.versions.get(a.table);
    if (!byVersion) this.versions.set(a.table, (byVersion = new Map()));
    byVersion.set(a.version, structuredClone(a));
    this.tables.add(a.table);
    this.emit({ type: "announced", table: a.table, version: a.version });
    return true;
  }

  async getAnnouncement(table: string, version: number): Promise<VersionAnnouncement | null> {
    this.check();
    const a = this.versions.get(table)?.get(version);
    return a ? structuredClone(a) : null;
  }

  async listAnnounced(table: string): Promise<number[]> {
    this.check();
    return [...(this.versions.get(table)?.keys() ?? [])].sort((a, b) => a - b);
  }

  async forgetVersions(table: string, versions: readonly number[], epoch: number): Promise<void> {
    this.check();
    if ((this.epochs.get(table) ?? 0) !== epoch) return;
    for (const v of versions) this.versions.get(table)?.delete(v);
  }

  async getDesired(table: string): Promise<DesiredState | null> {
    this.check();
    const d = this.desired.get(table);
    return d ? structuredClone(d) : null;
  }

  async setDesired(
    table: string,
    input: DesiredStateInput,
    options: { ifAbsent?: boolean } = {},
  ): Promise<DesiredState | null> {
    this.check();
    if (options.ifAbsent && this.desired.has(table)) return null;
    const generation = (this.generations.get(table) ?? 0) + 1;
    this.generations.set(table, generation);
    const d: DesiredState = {
      ...structuredClone(input),
      rolled_back: [...input.rolled_back],
      generation,
      updated_at_ms: this.now(),
    };
    this.desired.set(table, d);
    this.tables.add(table);
    this.emit({ type: "desired", table, generation });
    return structuredClone(d);
  }

  async listTables(): Promise<string[]> {
    this.check();
    return [...this.tables].sort();
  }

  async heartbeat(status: NodeStatus, ttlMs: number): Promise<void> {
    this.check();
    this.nodes.set(status.node, { value: structuredClone(status), expiresAtMs: this.now() + ttlMs });
  }

  async listNodes(): Promise<NodeStatus[]> {
    this.check();
    return [...this.nodes.keys()]
      .map((id) => this.live(this.nodes, id)?.value)
      .filter((n): n is NodeStatus => n !== undefined)
      .map((n) => structuredClone(n))
      .sort((a, b) => a.node.localeCompare(b.node));
  }

  async removeNode(node: string): Promise<void> {
    this.check();
    this.nodes.delete(node);
  }

  async subscribe(onEvent: (event: FleetEvent) => void): Promise<Subscription> {
    // Like ioredis, a subscription made while disconnected takes effect on reconnection.
    const handler = (e: FleetEvent): void => onEvent(e);
    this.handlers.add(handler);
    return { close: async () => void this.handlers.delete(handler) };
  }

  async publish(event: FleetEvent): Promise<void> {
    this.check();
    this.emit(event);
  }

  async close(): Promise<void> {
    this.handlers.clear();
  }

  private emit(event: FleetEvent): void {
    // Delivered asynchronously, as pub/sub is.
    for (const h of this.handlers) queueMicrotask(() => h(structuredClone(event)));
  }

  private live<T>(map: Map<string, Expiring<T>>, key: string): Expiring<T> | undefined {
    const entry = map.get(key);
    if (entry && entry.expiresAtMs <= this.now()) {
      map.delete(key);
      return undefined;
    }
    return entry;
  }

  private check(): void {
    if (!this.up) throw new UnavailableError("Cannot reach the coordination store: it is disconnected");
  }
}
