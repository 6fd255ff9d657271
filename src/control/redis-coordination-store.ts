/**
 * The fleet's control plane on Redis (ioredis). Each operation that must be atomic is one Lua
 * script: a lease is taken only if absent, with the next value of the table's epoch counter
 * (INCR, never below the floor the caller has seen on disk) and an expiry (PEXPIRE); a renewal
 * or release only by the holder of that epoch; an announcement only while its epoch is the
 * counter's value (a deposed writer's announcement is refused, so followers never fetch it).
 *
 * Keys (prefix `strata:<fleet>:`, see fleetKeys):
 *   lease:<table>       hash holder, node, address, epoch; expires (PX) unless renewed
 *   epoch:<table>       the fencing counter
 *   versions:<table>    hash version -> announcement JSON (manifest bytes, segments, epoch)
 *   desired:<table>     desired-state JSON; generation:<table> its counter
 *   tables              set of table names
 *   node:<id>           node status JSON, expires (PX) unless refreshed; nodes: set of ids
 *   events              pub/sub channel of FleetEvent JSON
 *
 * A long-lived node connects with an endless reconnect backoff and no offline queue: while Redis
 * is away every call fails at once with UnavailableError instead of queueing, and "up" fires
 * after each reconnection so the node re-reads everything (Redis may have lost its data: the
 * local services run it without persistence). The CLI connects with `failFast`: one attempt.
 */
import { Redis, type RedisOptions } from "ioredis";
import { UnavailableError, errorMessage } from "../shared/errors.js";
import { silentLogger, type Logger } from "../shared/logger.js";
import {
  fleetKeys,
  type CoordinationStore,
  type DesiredState,
  type DesiredStateInput,
  type FleetEvent,
  type LeaseHolder,
  type LeaseInfo,
  type NodeStatus,
  type Subscription,
  type VersionAnnouncement,
} from "./coordination-store.js";

const ACQUIRE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
local epoch = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[5])
if epoch <= floor then
  epoch = floor + 1
  redis.call('SET', KEYS[2], epoch)
end
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'node', ARGV[2], 'address', ARGV[3], 'epoch', epoch)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('SADD', KEYS[3], ARGV[6])
redis.call('PUBLISH', ARGV[7], '{"type":"lease","table":"' .. ARGV[6] .. '","node":' .. ARGV[8] .. ',"epoch":' .. epoch .. '}')
return epoch`;

const RENEW = `
if redis.call('HGET', KEYS[1], 'holder') == ARGV[1] and redis.call('HGET', KEYS[1], 'epoch') == ARGV[2] then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
return 0`;

const RELEASE = `
if redis.call('HGET', KEYS[1], 'holder') == ARGV[1] and redis.call('HGET', KEYS[1], 'epoch') == ARGV[2] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0`;

const ANNOUNCE = `
if tonumber(redis.call('GET', KEYS[1]) or '0') ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[4])
redis.call('PUBLISH', ARGV[5], '{"type":"announced","table":"' .. ARGV[4] .. '","version":' .. ARGV[2] .. '}')
return 1`;

const FORGET = `
if tonumber(redis.call('GET', KEYS[1]) or '0') ~= tonumber(ARGV[1]) then return 0 end
for i = 2, #ARGV do redis.call('HDEL', KEYS[2], ARGV[i]) end
return 1`;

const SET_DESIRED = `
if ARGV[2] == '1' and redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
local generation = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[3])
redis.call('PUBLISH', ARGV[4], '{"type":"desired","table":"' .. ARGV[3] .. '","generation":' .. generation .. '}')
return generation`;

export interface RedisCoordinationStoreOptions {
  readonly url: string;
  readonly fleetName: string;
  readonly logger?: Logger;
  /** One connection attempt, for the CLI: a Redis that is down fails the command at once. */
  readonly failFast?: boolean;
  /** Connection attempt timeout, ms. @default 2000 */
  readonly connectTimeoutMs?: number;
}

export class RedisCoordinationStore implements CoordinationStore {
  private readonly redis: Redis;
  private readonly keys: ReturnType<typeof fleetKeys>;
  private readonly log: Logger;
  private readonly where: string;
  private readonly listeners: ((state: "up" | "down") => void)[] = [];
  private readonly subscribers = new Set<Redis>();
  private up = false;

  constructor(private readonly options: RedisCoordinationStoreOptions) {
    this.keys = fleetKeys(options.fleetName);
    this.log = (options.logger ?? silentLogger).child({ component: "redis" });
    this.where = redactUrl(options.url);
    this.redis = new Redis(options.url, this.redisOptions());
    this.redis.on("ready", () => this.setUp(true));
    this.redis.on("close", () => this.setUp(false));
    // ioredis emits "error" on every failed attempt; the connection state says what matters.
    this.redis.on("error", (err: Error) => this.log.debug({ err: err.message }, "Redis connection error"));
  }

  /** Connects and waits until Redis answers, or throws UnavailableError (the CLI's way in). */
  static async connect(options: RedisCoordinationStoreOptions): Promise<RedisCoordinationStore> {
    const store = new RedisCoordinationStore({ failFast: true, ...options });
    try {
      await store.ready(options.connectTimeoutMs ?? 2000);
    } catch (err) {
      await store.close();
      throw err;
    }
    return store;
  }

  get connected(): boolean {
    return this.up;
  }

  onConnection(listener: (state: "up" | "down") => void): void {
    this.listeners.push(listener);
  }

  /** Resolves once connected; rejects with UnavailableError after `timeoutMs` or when attempts end. */
  ready(timeoutMs: number): Promise<void> {
    if (this.redis.status === "ready") return Promise.resolve();
    return new Promise((resolve, reject) => {
      let lastError = "no answer";
      const onError = (err: Error): void => void (lastError = err.message);
      const done = (err: Error | null): void => {
        clearTimeout(timer);
        this.redis.off("ready", onReady);
        this.redis.off("end", onEnd);
        this.redis.off("error", onError);
        if (err) reject(err);
        else resolve();
      };
      const onReady = (): void => done(null);
      const onEnd = (): void => done(this.unavailable(lastError));
      const timer = setTimeout(
        () => done(this.unavailable(`${lastError} (after ${timeoutMs} ms)`)),
        timeoutMs,
      );
      this.redis.on("ready", onReady);
      this.redis.on("end", onEnd);
      this.redis.on("error", onError);
    });
  }

  async acquireLease(table: string, h: LeaseHolder, ttlMs: number, minEpoch: number): Promise<number | null> {
    const epoch = await this.eval<number>(
      ACQUIRE,
      [this.keys.lease(table), this.keys.epoch(table), this.keys.tables],
      [h.holder, h.node, h.address, ttlMs, minEpoch, table, this.keys.events, JSON.stringify(h.node)],
    );
    return epoch < 0 ? null : epoch;
  }

  async renewLease(table: string, holder: string, epoch: number, ttlMs: number): Promise<boolean> {
    return (await this.eval<number>(RENEW, [this.keys.lease(table)], [holder, epoch, ttlMs])) === 1;
  }

  async releaseLease(table: string, holder: string, epoch: number): Promise<void> {
    await this.eval<number>(RELEASE, [this.keys.lease(table)], [holder, epoch]);
  }

  async getLease(table: string): Promise<LeaseInfo | null> {
    const [fields, ttl] = await this.call(async () => {
      const r = await this.redis.multi().hgetall(this.keys.lease(table)).pttl(this.keys.lease(table)).exec();
      return [(r?.[0]?.[1] ?? {}) as Record<string, string>, Number(r?.[1]?.[1] ?? -2)] as const;
    });
    if (!fields.holder || ttl < 0) return null;
    return {
      holder: fields.holder,
      node: fields.node ?? "",
      address: fields.address ?? "",
      epoch: Number(fields.epoch),
      ttlMs: ttl,
    };
  }

  async announceVersion(a: VersionAnnouncement): Promise<boolean> {
    const ok = await this.eval<number>(
      ANNOUNCE,
      [this.keys.epoch(a.table), this.keys.versions(a.table), this.keys.tables],
      [a.epoch, a.version, JSON.stringify(a), a.table, this.keys.events],
    );
    return ok === 1;
  }

  async getAnnouncement(table: string, version: number): Promise<VersionAnnouncement | null> {
    const json = await this.call(() => this.redis.hget(this.keys.versions(table), String(version)));
    return json === null ? null : (JSON.parse(json) as VersionAnnouncement);
  }

  async listAnnounced(table: string): Promise<number[]> {
    const fields = await this.call(() => this.redis.hkeys(this.keys.versions(table)));
    return fields
      .map(Number)
      .filter((v) => Number.isSafeInteger(v))
      .sort((a, b) => a - b);
  }

  async forgetVersions(table: string, versions: readonly number[], epoch: number): Promise<void> {
    if (versions.length === 0) return;
    await this.eval<number>(
      FORGET,
      [this.keys.epoch(table), this.keys.versions(table)],
      [epoch, ...versions],
    );
  }

  async getDesired(table: string): Promise<DesiredState | null> {
    const [json, generation] = await this.call(() =>
      this.redis.mget(this.keys.desired(table), this.keys.generation(table)),
    );
    if (!json) return null;
    return { ...(JSON.parse(json) as Omit<DesiredState, "generation">), generation: Number(generation ?? 0) };
  }

  async setDesired(
    table: string,
    desired: DesiredStateInput,
    options: { ifAbsent?: boolean } = {},
  ): Promise<DesiredState | null> {
    const body = { ...desired, rolled_back: [...desired.rolled_back], updated_at_ms: Date.now() };
    const generation = await this.eval<number>(
      SET_DESIRED,
      [this.keys.desired(table), this.keys.generation(table), this.keys.tables],
      [JSON.stringify(body), options.ifAbsent ? "1" : "0", table, this.keys.events],
    );
    return generation < 0 ? null : { ...body, generation };
  }

  async listTables(): Promise<string[]> {
    return (await this.call(() => this.redis.smembers(this.keys.tables))).sort();
  }

  async heartbeat(status: NodeStatus, ttlMs: number): Promise<void> {
    await this.call(() =>
      this.redis
        .multi()
        .set(this.keys.node(status.node), JSON.stringify(status), "PX", ttlMs)
        .sadd(this.keys.nodes, status.node)
        .exec(),
    );
  }

  async listNodes(): Promise<NodeStatus[]> {
    const ids = await this.call(() => this.redis.smembers(this.keys.nodes));
    if (ids.length === 0) return [];
    const values = await this.call(() => this.redis.mget(...ids.map((id) => this.keys.node(id))));
    const gone = ids.filter((_, i) => values[i] === null);
    if (gone.length > 0) await this.call(() => this.redis.srem(this.keys.nodes, ...gone));
    return values
      .filter((v): v is string => v !== null)
      .map((v) => JSON.parse(v) as NodeStatus)
      .sort((a, b) => a.node.localeCompare(b.node));
  }

  async removeNode(node: string): Promise<void> {
    await this.call(() => this.redis.multi().del(this.keys.node(node)).srem(this.keys.nodes, node).exec());
  }

  async subscribe(onEvent: (event: FleetEvent) => void): Promise<Subscription> {
    // A connection in subscriber mode takes no other commands: a duplicate of the main one. Its
    // SUBSCRIBE is queued until it connects (ioredis then resubscribes after every reconnection).
    const sub = this.redis.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null });
    sub.on("error", (err: Error) => this.log.debug({ err: err.message }, "Redis subscriber error"));
    sub.on("message", (_channel: string, message: string) => {
      let event: FleetEvent;
      try {
        event = JSON.parse(message) as FleetEvent;
      } catch {
        this.log.warn({ bytes: message.length }, "Ignoring a fleet event that is not JSON");
        return;
      }
      onEvent(event);
    });
    this.subscribers.add(sub);
    const subscribed = sub.subscribe(this.keys.events).catch((err: unknown) => {
      this.log.warn({ err: errorMessage(err) }, "Cannot subscribe to fleet events");
    });
    // With Redis there, return once subscribed (no event missed after this); without, at once.
    if (this.up) await subscribed;
    return {
      close: async () => {
        this.subscribers.delete(sub);
        sub.disconnect();
      },
    };
  }

  async publish(event: FleetEvent): Promise<void> {
    await this.call(() => this.redis.publish(this.keys.events, JSON.stringify(event)));
  }

  async close(): Promise<void> {
    for (const sub of this.subscribers) sub.disconnect();
    this.subscribers.clear();
    this.redis.disconnect();
    this.setUp(false);
  }

  private redisOptions(): RedisOptions {
    const common: RedisOptions = {
      connectTimeout: this.options.connectTimeoutMs ?? 2000,
      // Fail at once while disconnected instead of queueing: callers carry on without Redis.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      autoResubscribe: true,
    };
    if (this.options.failFast) return { ...common, retryStrategy: () => null };
    // A node reconnects forever, backing off to one attempt a second.
    return { ...common, retryStrategy: (attempt: number) => Math.min(100 * attempt, 1000) };
  }

  private setUp(up: boolean): void {
    if (up === this.up) return;
    this.up = up;
    this.log.info({ redis: this.where }, up ? "Redis connected" : "Redis connection lost");
    for (const l of this.listeners) {
      try {
        l(up ? "up" : "down");
      } catch (err) {
        this.log.error({ err: errorMessage(err) }, "Redis connection listener failed");
      }
    }
  }

  private async eval<T>(script: string, keys: string[], args: (string | number)[]): Promise<T> {
    return (await this.call(() => this.redis.eval(script, keys.length, ...keys, ...args))) as T;
  }

  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.unavailable(errorMessage(err), err);
    }
  }

  private unavailable(detail: string, cause?: unknown): UnavailableError {
    return new UnavailableError(
      `Cannot reach Redis at ${this.where}: ${detail} (check STRATA_REDIS_URL)`,
      cause === undefined ? {} : { cause },
    );
  }
}

/** The URL without its password, for messages and logs. */
export function redactUrl(url: string): string {
  return url.replace(
    /\/\/([^@/]*)@/,
    (_m, auth: string) => `//${auth.includes(":") ? auth.split(":")[0] + ":***" : "***"}@`,
  );
}
