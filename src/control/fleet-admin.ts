/**
 * What the fleet commands of the CLI do (docs/fleet.md): connect to the control plane (failing at
 * once with UnavailableError when Redis is down), save a desired state, and wait until every live
 * node serves it, or name the ones that do not (FleetIncompleteError). Also the report of
 * `strata fleet status`.
 */
import { hostname, userInfo } from "node:os";
import type { Config } from "../config/config.js";
import { TABLE_NAME_PATTERN } from "../format/schema.js";
import { TableNotFoundError } from "../storage/errors.js";
import { ConfigError } from "../shared/errors.js";
import type {
  CoordinationStore,
  DesiredState,
  DesiredStateInput,
  LeaseInfo,
  NodeStatus,
} from "./coordination-store.js";
import { FleetIncompleteError } from "./errors.js";
import { FOLLOW, fleetTarget, planPin, planResume, planRollback, stragglers } from "./fleet-state.js";
import { RedisCoordinationStore, redactUrl } from "./redis-coordination-store.js";

/** How long a fleet command waits for the nodes, ms. */
export const DEFAULT_FLEET_WAIT_MS = 15_000;
const POLL_MS = 100;

/** Connects the CLI to the fleet's control plane; ConfigError without STRATA_REDIS_URL. */
export async function openFleetAdmin(config: Config): Promise<CoordinationStore> {
  if (config.redisUrl === null) {
    throw new ConfigError("--fleet and fleet commands need the fleet's Redis: set STRATA_REDIS_URL");
  }
  return RedisCoordinationStore.connect({ url: config.redisUrl, fleetName: config.fleetName });
}

/** Who asks, as recorded in the desired state. */
export function requester(): string {
  let user = "unknown";
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry (containers)
  }
  return `${user}@${hostname()}`;
}

export interface FleetChange {
  table: string;
  /** What the fleet served before (null = nothing yet). */
  from: number | null;
  /** The version every node now serves. */
  target: number;
  desired: DesiredState;
  /** The live nodes holding the table, as they reported it. */
  nodes: NodeStatus[];
  waitedMs: number;
}

async function knownTable(store: CoordinationStore, table: string): Promise<void> {
  if (!TABLE_NAME_PATTERN.test(table) || !(await store.listTables()).includes(table)) {
    throw new TableNotFoundError(table, "known to the fleet: no node has announced a version of it");
  }
}

async function apply(
  store: CoordinationStore,
  table: string,
  plan: (desired: DesiredState | null, announced: number[]) => DesiredStateInput,
  timeoutMs: number,
): Promise<FleetChange> {
  await knownTable(store, table);
  const [current, announced] = await Promise.all([store.getDesired(table), store.listAnnounced(table)]);
  const from = fleetTarget(current ?? FOLLOW, announced);
  const desired = (await store.setDesired(table, plan(current, announced)))!;
  const target = fleetTarget(desired, announced);
  const started = Date.now();
  if (target === null) return { table, from, target: 0, desired, nodes: [], waitedMs: 0 };
  const nodes = await waitForFleet(store, table, target, desired.generation, timeoutMs);
  return { table, from, target, desired, nodes, waitedMs: Date.now() - started };
}

/** Polls the heartbeats until every live node holding `table` serves `target` (or times out). */
export async function waitForFleet(
  store: CoordinationStore,
  table: string,
  target: number,
  generation: number,
  timeoutMs: number,
): Promise<NodeStatus[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const nodes = (await store.listNodes()).filter((n) => n.tables[table] !== undefined);
    const late = stragglers(nodes, table, target, generation);
    if (late.length === 0) return nodes;
    if (Date.now() >= deadline) throw new FleetIncompleteError(table, target, late, timeoutMs);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

export async function fleetRollback(
  store: CoordinationStore,
  table: string,
  options: { to?: number; force?: boolean; timeoutMs: number },
): Promise<FleetChange> {
  const by = requester();
  return apply(
    store,
    table,
    (desired, announced) =>
      planRollback(table, desired, announced, {
        ...(options.to === undefined ? {} : { to: options.to }),
        force: options.force === true,
        by,
      }).desired,
    options.timeoutMs,
  );
}

export async function fleetPin(
  store: CoordinationStore,
  table: string,
  timeoutMs: number,
): Promise<FleetChange> {
  const by = requester();
  return apply(store, table, (d, announced) => planPin(table, d, announced, by).desired, timeoutMs);
}

export async function fleetResume(
  store: CoordinationStore,
  table: string,
  from: "version" | "latest",
  timeoutMs: number,
): Promise<FleetChange> {
  const by = requester();
  return apply(store, table, (d) => planResume(d, from, by), timeoutMs);
}

export interface FleetStatusReport {
  fleet: string;
  redis: string;
  tables: {
    table: string;
    target: number | null;
    desired: DesiredState | null;
    lease: LeaseInfo | null;
    announced: number[];
  }[];
  nodes: (NodeStatus & {
    heartbeat_age_ms: number;
    tables: Record<string, NodeStatus["tables"][string] & { behind: boolean; data_age_ms: number | null }>;
  })[];
}

/** Everything `strata fleet status` shows: per table the target and writer, per node what it serves. */
export async function fleetStatus(store: CoordinationStore, config: Config): Promise<FleetStatusReport> {
  const now = Date.now();
  const [names, nodes] = await Promise.all([store.listTables(), store.listNodes()]);
  const tables = await Promise.all(
    names.map(async (table) => {
      const [desired, announced, lease] = await Promise.all([
        store.getDesired(table),
        store.listAnnounced(table),
        store.getLease(table),
      ]);
      return { table, target: fleetTarget(desired, announced), desired, lease, announced };
    }),
  );
  const targets = new Map(tables.map((t) => [t.table, t.target]));
  return {
    fleet: config.fleetName,
    redis: redactUrl(config.redisUrl ?? ""),
    tables,
    nodes: nodes.map((n) => ({
      ...n,
      heartbeat_age_ms: Math.max(0, now - n.heartbeat_at_ms),
      tables: Object.fromEntries(
        Object.entries(n.tables).map(([t, s]) => [
          t,
          {
            ...s,
            behind: targets.get(t) !== undefined && targets.get(t) !== null && s.serving !== targets.get(t),
            data_age_ms: s.version_created_at_ms === null ? null : Math.max(0, now - s.version_created_at_ms),
          },
        ]),
      ),
    })),
  };
}
