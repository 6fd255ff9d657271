/**
 * What a server serves of one table: the snapshot of its current version, swapped as `current`
 * moves. A new version is opened and verified (every byte of the segments it adds, on libuv's
 * thread pool while requests go on; the manifest against the config) before it is swapped in; a version that fails is refused and the table keeps
 * serving what it had. A request takes the snapshot once and finishes on it, whatever swaps happen
 * meanwhile; a snapshot nobody holds is collected, and with it the mappings only it used.
 */
import { EventEmitter } from "node:events";
import { MappedSegmentCache } from "../storage/mapped-segment.js";
import { openSnapshot, openVerifiedSnapshot, type VersionSnapshot } from "../storage/version-snapshot.js";
import { TableStore } from "../storage/table-store.js";
import { verifyVersions } from "../storage/version-verify.js";
import { NoVersionError } from "../storage/errors.js";
import type { TableSchema } from "../format/schema.js";
import { ResponsePlan, type EncodeCounters, type Encoding } from "./response-encoder.js";
import { RequestError } from "./errors.js";
import { errorMessage } from "../shared/errors.js";

export type VersionEventType = "serving" | "published" | "rolled_back" | "rejected" | "fallback";

export interface VersionEvent {
  table: string;
  type: VersionEventType;
  version: number;
  previousVersion: number;
  reason: string;
  timeMs: number;
}

/** Older versions asked for by number stay open while this many are in use. */
const PINNED_SNAPSHOTS = 4;

export class ServedTable {
  readonly store: TableStore;
  private current: VersionSnapshot | null = null;
  /** Versions that failed verification, with why: not retried until `current` names another version. */
  private readonly refused = new Map<number, string>();
  private readonly older = new Map<number, VersionSnapshot>();
  private readonly plans = new Map<string, ResponsePlan>();
  private checking = false;
  /** `current` moved again while a refresh was running: run it once more. */
  private recheck = false;
  /** Swaps (refresh, quarantine) run one at a time, in order. */
  private swaps: Promise<unknown> = Promise.resolve();
  constructor(
    readonly schema: TableSchema,
    dataDir: string,
    private readonly cache: MappedSegmentCache,
    private readonly events: EventEmitter,
    /**
     * Rows answered since start, by status: plain numbers on the read path, read by /metrics. A
     * table opened again under a changed schema (a config reload) goes on counting in its
     * predecessor's.
     */
    readonly rowCounts: EncodeCounters = { found: 0, notFound: 0, outsideMaxAge: 0, dataLoss: 0 },
  ) {
    this.store = new TableStore(dataDir, schema.name);
  }

  get snapshot(): VersionSnapshot | null {
    return this.current;
  }

  get servingVersion(): number {
    return this.current?.version ?? 0;
  }

  /** The snapshot a request reads: the current one, or a retained version asked for by number. */
  snapshotFor(version: number): VersionSnapshot {
    if (version === 0 || version === this.current?.version) {
      if (!this.current) {
        if (this.refused.size === 0) throw new NoVersionError(this.schema.name);
        const refused = [...this.refused.keys()].sort((a, b) => b - a);
        throw new NoVersionError(
          this.schema.name,
          `has no version that verifies (refused: ${refused.map((v) => `v${v}`).join(", ")}; v${refused[0]}: ${this.refused.get(refused[0]!)})`,
        );
      }
      return this.current;
    }
    let snap = this.older.get(version);
    // Open here, but gc'd since: not retained any more, so NOT_FOUND, as a fresh open would say.
    if (snap && !this.store.isRetained(version)) {
      this.older.delete(version);
      snap = undefined;
    }
    if (!snap) {
      this.store.requireRetained(version);
      snap = openSnapshot(this.store, this.cache, version, { verify: true, schema: this.schema });
      if (this.older.size >= PINNED_SNAPSHOTS) this.older.delete(this.older.keys().next().value!);
      this.older.set(version, snap);
    }
    return snap;
  }

  /**
   * The response plan for a feature subset (empty = all), cached per subset. Features are the
   * config's: a version written before one was added answers it as null (VersionSnapshot.features).
   */
  plan(features: readonly string[], encoding: Encoding, snapshot: VersionSnapshot): ResponsePlan {
    // JSON, not a join: ["a,b"] and ["a", "b"], or [""] and [], must not share an entry.
    const cacheKey = `${snapshot.manifest.schema_hash}|${encoding}|${JSON.stringify(features)}`;
    let plan = this.plans.get(cacheKey);
    if (!plan) {
      if (encoding === "packed")
        snapshot.requireReaderSchema("PACKED rows are laid out by the config's schema; ask for TYPED values");
      const names = snapshot.features.map((f) => f.name);
      const wanted =
        features.length === 0
          ? names.map((_, i) => i)
          : features.map((name) => {
              const i = names.indexOf(name);
              if (i < 0) throw new RequestError(`Table "${this.schema.name}" has no feature "${name}"`);
              return i;
            });
      const slots = wanted.map((i) => {
        const source = snapshot.mapping.sources[i]!;
        return { name: names[i]!, slot: source < 0 ? null : snapshot.layout.slots[source]! };
      });
      plan = new ResponsePlan(this.schema.name, snapshot.layout, slots, encoding);
      if (this.plans.size > 256) this.plans.clear();
      this.plans.set(cacheKey, plan);
    }
    return plan;
  }

  /**
   * Follows `current` on disk: opens, verifies and swaps to the version it names. Resolves true
   * when the served version changed. Never rejects: a bad version is refused and reported.
   */
  async refresh(): Promise<boolean> {
    if (this.checking) {
      this.recheck = true;
      return false;
    }
    this.checking = true;
    let changed = false;
    try {
      do {
        this.recheck = false;
        if (await this.serialized(() => this.followCurrent())) changed = true;
      } while (this.recheck);
    } finally {
      this.checking = false;
    }
    return changed;
  }

  private async followCurrent(): Promise<boolean> {
    let target: number | null;
    try {
      target = this.store.currentVersion();
    } catch (err) {
      this.emit("rejected", 0, `Cannot read "current": ${errorMessage(err)}`);
      return false;
    }
    if (target === null || target === this.current?.version || this.refused.has(target)) return false;
    const type = target < (this.current?.version ?? 0) ? "rolled_back" : "published";
    if (await this.swapTo(target, type, "current moved")) return true;
    // Refused. A server that serves something keeps it; one that serves nothing yet (a start on a
    // damaged current) falls back as it would after a CRC failure, rather than serve nothing.
    return this.current === null ? this.fallBackBelow(target, `version ${target} was refused`) : false;
  }

  /** Swaps to the newest retained version below `version` that verifies; false when none does. */
  private async fallBackBelow(version: number, reason: string): Promise<boolean> {
    for (const v of this.store.listVersions().reverse()) {
      if (v >= version || this.refused.has(v)) continue;
      const problems = verifyVersions(this.store, [v]).problems;
      if (problems.length > 0) {
        this.refused.set(v, problems[0]!.message);
        continue;
      }
      if (await this.swapTo(v, "fallback", reason)) return true;
    }
    return false;
  }

  /**
   * A record of the served version failed its CRC: verify the whole version now. If it fails,
   * fall back to the newest retained version below it that verifies. Never rejects.
   */
  quarantine(): Promise<void> {
    return this.serialized(async () => {
      const snap = this.current;
      if (!snap) return;
      try {
        const problems = verifyVersions(this.store, [snap.version]).problems;
        if (problems.length === 0) return;
        this.refused.set(snap.version, problems[0]!.message);
        const reason = `version ${snap.version} failed verification: ${problems[0]!.message}`;
        for (const s of snap.manifest.segments) this.cache.evict(s.uuid);
        if (await this.fallBackBelow(snap.version, reason)) return;
        this.emit("rejected", snap.version, `${reason}; no older version verifies, still serving it`);
      } catch (err) {
        this.emit("rejected", snap.version, `Cannot verify version ${snap.version}: ${errorMessage(err)}`);
      }
    });
  }

  private serialized<T>(op: () => Promise<T>): Promise<T> {
    const run = this.swaps.then(op);
    this.swaps = run.catch(() => undefined);
    return run;
  }

  private async swapTo(version: number, type: VersionEventType, reason: string): Promise<boolean> {
    let next: VersionSnapshot;
    try {
      next = await openVerifiedSnapshot(this.store, this.cache, version, { schema: this.schema });
      for (const seg of next.segments) seg.warmIndex();
    } catch (err) {
      this.refused.set(version, errorMessage(err));
      this.emit("rejected", version, errorMessage(err));
      return false;
    }
    const previous = this.current?.version ?? 0;
    this.current = next;
    this.older.delete(version);
    this.emit(previous === 0 && type !== "fallback" ? "serving" : type, version, reason, previous);
    return true;
  }

  private emit(
    type: VersionEventType,
    version: number,
    reason: string,
    previousVersion = this.current?.version ?? 0,
  ): void {
    const event: VersionEvent = {
      table: this.schema.name,
      type,
      version,
      previousVersion,
      reason,
      timeMs: Date.now(),
    };
    this.events.emit("version", event);
  }
}
