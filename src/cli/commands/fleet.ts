/**
 * Fleet commands (docs/fleet.md): `strata fleet status`, and the `--fleet` forms of rollback,
 * pin, unpin and resume (versions.ts hands them here). They talk to the fleet's Redis
 * (STRATA_REDIS_URL, STRATA_FLEET_NAME), never to a data dir: a desired state is saved there and
 * every node applies it, including nodes that start later. Redis down: exit 8 at once.
 */
import type { Command } from "commander";
import type { CliContext } from "../context.js";
import {
  DEFAULT_FLEET_WAIT_MS,
  fleetPin,
  fleetResume,
  fleetRollback,
  fleetStatus,
  openFleetAdmin,
  type FleetChange,
  type FleetStatusReport,
} from "../../control/fleet-admin.js";
import type { CoordinationStore } from "../../control/coordination-store.js";
import { UsageError } from "../../shared/errors.js";

export type FleetAction =
  | { kind: "rollback"; to?: number; force?: boolean }
  | { kind: "pin" }
  | { kind: "resume"; from: "version" | "latest" };

/** Parses `--timeout <ms>` of the fleet forms. */
export function parseTimeout(value: string | undefined): number {
  if (value === undefined) return DEFAULT_FLEET_WAIT_MS;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0)
    throw new UsageError(`--timeout must be milliseconds, 0 or more (got "${value}")`);
  return n;
}

async function withFleet<T>(c: CliContext, fn: (store: CoordinationStore) => Promise<T>): Promise<T> {
  const store = await openFleetAdmin(c.config);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** `rollback|pin|unpin|resume <table> --fleet`: save the desired state, wait for every live node. */
export async function runFleetVersionCommand(
  c: CliContext,
  table: string,
  action: FleetAction,
  timeoutMs: number,
): Promise<void> {
  const change: FleetChange = await withFleet(c, (store) => {
    switch (action.kind) {
      case "rollback":
        return fleetRollback(store, table, {
          ...(action.to === undefined ? {} : { to: action.to }),
          force: action.force === true,
          timeoutMs,
        });
      case "pin":
        return fleetPin(store, table, timeoutMs);
      case "resume":
        return fleetResume(store, table, action.from, timeoutMs);
    }
  });
  const on = `on ${change.nodes.length} node(s) in ${change.waitedMs} ms`;
  const text =
    action.kind === "rollback"
      ? `${table}: fleet rolled back v${change.from} -> v${change.target} ${on} (pinned; "strata resume ${table} --fleet" lets ingest publish again)`
      : action.kind === "pin"
        ? `${table}: fleet pinned at v${change.target} ${on}`
        : `${table}: fleet resumed (from ${action.from}), serving v${change.target} ${on}`;
  c.print(
    {
      table,
      from: change.from,
      version: change.target,
      mode: change.desired.mode,
      generation: change.desired.generation,
      rolled_back: change.desired.rolled_back,
      nodes: change.nodes.map((n) => ({ node: n.node, serving: n.tables[table]?.serving ?? null })),
      waited_ms: change.waitedMs,
    },
    change.nodes.length === 0 ? `${text} (no live node holds the table yet)` : text,
  );
}

export function registerFleetCommand(program: Command, ctx: (cmd: Command) => CliContext): void {
  const fleet = program.command("fleet").description("the fleet's nodes and tables (needs STRATA_REDIS_URL)");
  fleet
    .command("status", { isDefault: true })
    .description(
      "nodes with their role, versions per table, freshness and last heartbeat; tables with target and writer",
    )
    .action(async (_o, cmd: Command) => {
      const c = ctx(cmd);
      const report = await withFleet(c, (store) => fleetStatus(store, c.config));
      c.print(report, describeStatus(report));
    });
}

const age = (ms: number | null): string =>
  ms === null ? "-" : ms < 10_000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.round(ms / 1000)}s`;

function describeStatus(r: FleetStatusReport): string[] {
  const lines = [
    `fleet "${r.fleet}" on ${r.redis}: ${r.nodes.length} live node(s), ${r.tables.length} table(s)`,
  ];
  for (const t of r.tables) {
    const mode = t.desired
      ? t.desired.mode === "pinned"
        ? `pinned at v${t.desired.version}`
        : "following"
      : "no desired state";
    const writer = t.lease ? `writer ${t.lease.node} (epoch ${t.lease.epoch})` : "no writer";
    const rolledBack = t.desired?.rolled_back.length
      ? ` rolled back ${t.desired.rolled_back.map((v) => `v${v}`).join(",")}`
      : "";
    lines.push(
      `  table ${t.table}: target ${t.target === null ? "-" : `v${t.target}`}, ${mode}, ${writer}, ${t.announced.length} announced${rolledBack}`,
    );
  }
  for (const n of r.nodes) {
    const tables = Object.entries(n.tables).map(([name, s]) => {
      const flags = [
        s.writer ? `writer e${s.epoch}` : "",
        s.pinned ? "pinned" : "",
        s.behind ? "BEHIND" : "",
        s.error ? `error: ${s.error}` : "",
      ]
        .filter(Boolean)
        .join(" ");
      const lag = s.ingest_lag === null ? "" : ` lag ${s.ingest_lag}`;
      return `${name} v${s.serving} (data ${age(s.data_age_ms)} old${lag})${flags ? ` [${flags}]` : ""}`;
    });
    lines.push(
      `  node ${n.node} ${n.role} ${n.address} heartbeat ${age(n.heartbeat_age_ms)} ago: ${tables.join("; ") || "-"}`,
    );
  }
  return lines;
}
