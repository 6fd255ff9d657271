/**
 * The fleet's decisions as pure functions of what the registry holds (docs/fleet.md): which
 * version a table should serve, what a fleet rollback / pin / resume asks for, which nodes lag.
 * No I/O here, so every rule is unit-tested on its own.
 */
import type { DesiredState, DesiredStateInput, NodeStatus } from "./coordination-store.js";
import {
  NoPreviousVersionError,
  NoVersionError,
  VersionNotFoundError,
  VersionRolledBackError,
} from "../storage/errors.js";

/**
 * The version every node should serve: the pinned one, or (following) the newest announced
 * version that is not rolled back. Null when there is nothing to serve yet.
 */
export function fleetTarget(desired: DesiredState | null, announced: readonly number[]): number | null {
  if (!desired) return null;
  if (desired.mode === "pinned") return desired.version;
  const rolledBack = new Set(desired.rolled_back);
  let best: number | null = null;
  for (const v of announced) if (!rolledBack.has(v) && (best === null || v > best)) best = v;
  return best;
}

/**
 * What this node should make current. A follower takes the fleet target. The writer, while
 * following, keeps a newer version of its own that it has not announced yet (it publishes
 * first, then announces): it never steps back from its own publish to an older announcement.
 */
export function nodeTarget(
  desired: DesiredState | null,
  announced: readonly number[],
  localCurrent: number | null,
  isWriter: boolean,
): number | null {
  const target = fleetTarget(desired, announced);
  if (
    isWriter &&
    desired?.mode === "follow" &&
    localCurrent !== null &&
    (target === null || localCurrent > target) &&
    !desired.rolled_back.includes(localCurrent)
  ) {
    return localCurrent;
  }
  return target;
}

/** The desired state a writer seeds when the control plane has none (first start, or lost data). */
export function seedDesired(
  local: { pinned: boolean; pinned_version: number | null; rolled_back: readonly number[] },
  current: number | null,
  by: string,
): DesiredStateInput {
  const pinnedAt = local.pinned_version ?? current;
  return local.pinned && pinnedAt !== null
    ? { mode: "pinned", version: pinnedAt, rolled_back: [...local.rolled_back], resume_from: "version", by }
    : { mode: "follow", version: null, rolled_back: [...local.rolled_back], resume_from: "version", by };
}

/** Before any desired state exists, the fleet follows its newest version. */
export const FOLLOW: DesiredState = {
  mode: "follow",
  version: null,
  rolled_back: [],
  resume_from: "version",
  generation: 0,
  updated_at_ms: 0,
  by: "",
};

/**
 * `strata rollback <table> --fleet [--to N] [--force]`: pin the fleet at N (default: the newest
 * announced version below the fleet's target that is not rolled back), marking every announced
 * version above N rolled back. Refuses what a local rollback refuses.
 */
export function planRollback(
  table: string,
  desired: DesiredState | null,
  announced: readonly number[],
  options: { to?: number; force?: boolean; by: string },
): { from: number; to: number; desired: DesiredStateInput } {
  const d = desired ?? FOLLOW;
  const current = fleetTarget(d, announced);
  if (current === null) throw new NoVersionError(table);
  let to = options.to;
  if (to === undefined) {
    to = [...announced].reverse().find((v) => v < current && !d.rolled_back.includes(v));
    if (to === undefined) throw new NoPreviousVersionError(table, current);
  }
  if (!announced.includes(to)) throw new VersionNotFoundError(table, to);
  if (d.rolled_back.includes(to) && !options.force) throw new VersionRolledBackError(table, to);
  const target = to;
  const rolledBack = new Set(d.rolled_back.filter((v) => v !== target));
  for (const v of announced) if (v > target) rolledBack.add(v);
  return {
    from: current,
    to: target,
    desired: {
      mode: "pinned",
      version: target,
      rolled_back: [...rolledBack].sort((a, b) => a - b),
      resume_from: "version",
      by: options.by,
    },
  };
}

/** `strata pin <table> --fleet`: pin the fleet at the version it serves now. */
export function planPin(
  table: string,
  desired: DesiredState | null,
  announced: readonly number[],
  by: string,
): { version: number; desired: DesiredStateInput } {
  const d = desired ?? FOLLOW;
  const version = fleetTarget(d, announced);
  if (version === null) throw new NoVersionError(table);
  return {
    version,
    desired: { mode: "pinned", version, rolled_back: [...d.rolled_back], resume_from: "version", by },
  };
}

/**
 * `strata resume|unpin <table> --fleet [--from version|latest]`: follow again. The rolled-back
 * marks stay, so the fleet serves the pinned version until the writer publishes a newer one.
 */
export function planResume(
  desired: DesiredState | null,
  from: "version" | "latest",
  by: string,
): DesiredStateInput {
  return {
    mode: "follow",
    version: null,
    rolled_back: [...(desired?.rolled_back ?? [])],
    resume_from: from,
    by,
  };
}

/**
 * Live nodes that hold `table` and do not serve `target` yet, or have not applied desired-state
 * `generation` yet (the CLI waits for none).
 */
export function stragglers(
  nodes: readonly NodeStatus[],
  table: string,
  target: number,
  generation = 0,
): { node: string; serving: number | null; error: string | null }[] {
  return nodes
    .filter((n) => {
      const t = n.tables[table];
      return t !== undefined && (t.serving !== target || t.applied_generation < generation);
    })
    .map((n) => ({
      node: n.node,
      serving: n.tables[table]?.serving ?? null,
      error: n.tables[table]?.error ?? null,
    }));
}
