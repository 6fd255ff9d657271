/**
 * One table on one fleet node (docs/fleet.md): brings the local data dir to what the control
 * plane asks, again and again (on every notification, on a timer, after every reconnection),
 * so a missed message or an outage only delays it.
 *
 * A reconcile, serialised per table:
 *   1. as the writer (holding the lease): seed the desired state if the control plane has none
 *      (first start, or Redis lost its data), and announce every retained local version the
 *      registry does not have yet, in order;
 *   2. read the desired state and the announced versions; pick the target (fleet-state.ts);
 *   3. if the target is not here, or here with other bytes than the registry's (the last
 *      publish of a deposed writer), fetch its segments from the writer or any node that has
 *      them, check them, install its manifest under the same version number;
 *   4. `follow`: make it current with the pin the desired state names (a full check of any
 *      segment this process has not checked yet comes first), then tell the server to swap;
 *   5. as the writer: start ingest once caught up, with the lease epoch as its fencing token.
 */
import { readFileSync } from "node:fs";
import { checkSegmentFile } from "../storage/segment-check.js";
import { decodeManifest, sha256 } from "../storage/manifest.js";
import type { TableStore } from "../storage/table-store.js";
import { ManifestCorruptError } from "../storage/errors.js";
import type { TableSchema } from "../format/schema.js";
import { UnavailableError, errorMessage } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import type {
  CoordinationStore,
  DesiredState,
  NodeTableStatus,
  VersionAnnouncement,
} from "./coordination-store.js";
import { LeaseLostError } from "./errors.js";
import { nodeTarget, seedDesired } from "./fleet-state.js";
import type { SegmentFetcher } from "./segment-fetcher.js";
import type { WriterLease } from "./writer-lease.js";

/** A running ingestor of one table, as the fleet starts and stops it. */
export interface TableIngestHandle {
  stop(): Promise<void>;
  status?(): { kafkaLag: number | null; lastPublishMs: number | null };
}

/**
 * Starts ingest of one table for the lease holder. `writerEpoch` goes into every manifest it
 * publishes; `beforePublish` throws (LeaseLostError) once the lease is not held any more;
 * `onPublished` lets the fleet announce at once.
 */
export type StartTableIngest = (
  table: string,
  fence: { writerEpoch: number; beforePublish: () => void; onPublished: () => void },
) => Promise<TableIngestHandle>;

/** What the fleet needs of the local server (null when there is none, as in a cluster primary). */
export interface ServingView {
  servingVersion(table: string): number | null;
  /** Re-reads `current` now instead of waiting for the file watch. */
  refresh(table: string): void;
}

export interface FleetTableOptions {
  readonly schema: TableSchema;
  readonly store: TableStore;
  readonly coord: CoordinationStore;
  readonly serving: ServingView | null;
  readonly self: { readonly node: string; readonly address: string };
  /** Null on a replica: it never writes. */
  readonly lease: WriterLease | null;
  readonly startIngest: StartTableIngest | null;
  readonly keepVersions: number;
  readonly fetcherFor: (address: string) => SegmentFetcher;
  /** Fetch addresses of the other live nodes. */
  readonly peers: () => Promise<string[]>;
  /** Called when what this node serves changed (the node sends a heartbeat at once). */
  readonly onChange: () => void;
  /** A new writer abandons an announced version it cannot fetch from anyone after this long. */
  readonly catchUpTimeoutMs: number;
  readonly logger: Logger;
  readonly now?: () => number;
}

export class FleetTable {
  readonly name: string;
  private readonly log: Logger;
  private readonly now: () => number;
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  /** Segments this process has checked byte for byte (fetched, or checked before a swap). */
  private readonly checked = new Set<string>();
  /** Versions known to be in the registry with this node's bytes. */
  private readonly announced = new Set<number>();
  private desiredSeeded = false;
  private appliedGeneration = 0;
  private lastError: string | null = null;
  private writerSinceMs: number | null = null;
  private ingest: TableIngestHandle | null = null;
  private ingestEpoch: number | null = null;
  private ingestStarting: Promise<void> | null = null;
  private createdAt: { version: number; ms: number } | null = null;

  constructor(private readonly o: FleetTableOptions) {
    this.name = o.schema.name;
    this.log = o.logger.child({ table: this.name });
    this.now = o.now ?? Date.now;
    o.lease?.on("acquired", (epoch) => {
      this.observeEpoch(epoch);
      this.writerSinceMs = this.now();
      this.desiredSeeded = false;
      this.announced.clear();
      this.schedule();
    });
    o.lease?.on("lost", () => {
      this.writerSinceMs = null;
      void this.stopIngest().finally(() => this.schedule());
    });
  }

  /**
   * A lease epoch seen in the fleet (ours or another node's): kept on disk, so the fence holds
   * here and the next lease this node takes is above it even if Redis lost its counter.
   */
  observeEpoch(epoch: number): void {
    try {
      this.o.store.noteWriterEpoch(epoch);
    } catch (err) {
      this.log.warn({ epoch, err: errorMessage(err) }, "Cannot record the writer epoch");
    }
  }

  /** Forgets what the control plane was known to hold (after a reconnection: it may be empty). */
  forgetRegistry(): void {
    this.announced.clear();
    this.desiredSeeded = false;
  }

  /** Runs a reconcile soon; one at a time, and once more if asked while one runs. */
  schedule(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.reconcileOnce();
      } while (this.again && !this.stopped);
    })().finally(() => (this.running = null));
    return this.running;
  }

  status(): NodeTableStatus {
    const current = this.o.store.currentVersion();
    const serving = this.o.serving ? (this.o.serving.servingVersion(this.name) ?? 0) : (current ?? 0);
    const ingest = this.ingest?.status?.() ?? null;
    return {
      serving,
      current,
      pinned: this.o.store.readState().pinned,
      applied_generation: this.appliedGeneration,
      writer: this.o.lease?.held ?? false,
      epoch: this.o.lease?.epoch ?? null,
      version_created_at_ms: this.createdAtOf(serving),
      ingest_lag: ingest?.kafkaLag ?? null,
      last_publish_ms: ingest?.lastPublishMs ?? null,
      error: this.lastError,
    };
  }

  /** Stops ingest (its final publish goes through while the lease holds) and announces it. */
  async stop(): Promise<void> {
    await this.stopIngest();
    if (this.o.lease?.held && this.o.coord.connected) {
      await this.announceLocal().catch((err: unknown) =>
        this.log.warn({ err: errorMessage(err) }, "Cannot announce the final versions"),
      );
    }
    this.stopped = true;
    await this.running;
  }

  // ------------------------------------------------------------------------------------------

  private async reconcileOnce(): Promise<void> {
    if (!this.o.coord.connected) return; // nothing to learn; serving goes on untouched
    try {
      await this.reconcile();
      if (this.lastError !== null) this.log.info({}, "Reconciled again");
      this.lastError = null;
    } catch (err) {
      const message = errorMessage(err);
      if (message !== this.lastError) this.log.warn({ err: message }, "Cannot reconcile with the fleet");
      this.lastError = message;
    }
  }

  private async reconcile(): Promise<void> {
    const { coord, store } = this.o;
    const writer = this.o.lease?.held ?? false;
    if (writer) {
      await this.seedDesiredState();
      await this.announceLocal();
    }
    const [desired, announced] = await Promise.all([
      coord.getDesired(this.name),
      coord.listAnnounced(this.name),
    ]);
    if (!desired) return; // nothing asked yet: a writer seeds it
    const target = nodeTarget(desired, announced, store.currentVersion(), writer);
    if (target !== null) {
      try {
        await this.ensureInstalled(target);
      } catch (err) {
        if (!(await this.abandonIfUnreachable(target, desired, err))) throw err;
        this.again = true; // follow the new target at once
        return;
      }
      const r = store.follow(target, {
        pinned: desired.mode === "pinned",
        rolledBack: desired.rolled_back,
        resumeFrom: desired.resume_from,
        verify: (v) => this.verify(v),
      });
      if (r.changed) {
        this.log.info(
          { from: r.from, to: target, mode: desired.mode, generation: desired.generation },
          "Following the fleet",
        );
        this.o.serving?.refresh(this.name);
        this.o.onChange();
        if (!writer) this.retain();
      }
    }
    this.appliedGeneration = desired.generation;
    if (this.o.lease?.held) {
      this.reserveAnnouncedNumbers(announced);
      await this.startIngest();
      await this.forgetOld(announced, desired);
    }
  }

  /** Installs `target` from the registry unless this node holds it with the registry's bytes. */
  private async ensureInstalled(target: number): Promise<void> {
    const { store, coord } = this.o;
    const local = store.listVersions().includes(target);
    if (local && this.announced.has(target)) return;
    const ann = await coord.getAnnouncement(this.name, target);
    if (local) {
      if (!ann) return; // the writer's own, not announced yet
      const mine = store.readManifest(target).sha256;
      if (mine === ann.sha256) {
        this.announced.add(target);
        return;
      }
      this.discardOrphan(target, mine, ann.sha256);
    }
    if (!ann)
      throw new UnavailableError(`Version ${target} of table "${this.name}" is not in the registry yet`);
    await this.install(ann);
    this.announced.add(target);
  }

  private async install(ann: VersionAnnouncement): Promise<void> {
    const bytes = Buffer.from(ann.manifest, "utf8");
    const where = `<registry: ${this.name} v${ann.version}>`;
    if (sha256(bytes) !== ann.sha256) {
      throw new ManifestCorruptError(
        `Manifest is corrupt: its SHA-256 differs from the announcement: "${where}"`,
        where,
      );
    }
    const manifest = decodeManifest(bytes, where);
    const sources = await this.sources(ann);
    if (sources.length === 0)
      throw new UnavailableError(`No node to fetch ${this.name} v${ann.version} from`);
    let fetched = 0;
    for (const entry of manifest.segments) {
      let lastError: unknown = null;
      for (const address of sources) {
        try {
          const how = await this.o
            .fetcherFor(address)
            .fetchSegment(this.o.store, entry, manifest.schema_hash);
          if (how === "fetched") {
            this.checked.add(entry.uuid);
            fetched++;
          }
          lastError = null;
          break;
        } catch (err) {
          lastError = err;
          this.log.debug(
            { address, uuid: entry.uuid, err: errorMessage(err) },
            "Fetch failed; trying the next node",
          );
        }
      }
      if (lastError !== null) throw lastError;
    }
    this.o.store.installManifest(bytes);
    this.log.info(
      { version: ann.version, segments: manifest.segments.length, fetched, from: sources[0] },
      "Installed",
    );
  }

  /** The writer (lease holder), then the announcing node, then every other live node. */
  private async sources(ann: VersionAnnouncement): Promise<string[]> {
    const lease = await this.o.coord.getLease(this.name).catch(() => null);
    const all = [lease?.address, ann.address, ...(await this.o.peers().catch(() => []))];
    return [...new Set(all.filter((a): a is string => !!a && a !== this.o.self.address))];
  }

  /**
   * A local version under a number the registry gives other bytes: a deposed writer's last
   * publish that never reached the registry. The registry wins; the local one goes (if it is
   * current, `current` first steps back to the newest other version).
   */
  private discardOrphan(version: number, mine: string, theirs: string): void {
    const { store } = this.o;
    this.log.warn({ version, local: mine, registry: theirs }, "Discarding a version the fleet does not know");
    if (store.currentVersion() === version) {
      const fallback = store
        .listVersions()
        .filter((v) => v !== version)
        .pop();
      if (fallback === undefined) {
        throw new UnavailableError(
          `Version ${version} of table "${this.name}" here differs from the fleet's and is the only one: remove it by hand`,
        );
      }
      const state = store.readState();
      store.follow(fallback, {
        pinned: state.pinned,
        rolledBack: [],
        resumeFrom: "version",
        verify: (v) => this.verify(v),
      });
      this.o.serving?.refresh(this.name);
    }
    store.discardVersion(version);
    this.announced.delete(version);
  }

  /**
   * A new writer that cannot fetch the fleet's newest version from anyone (its writer died
   * before any follower copied it) gives it up after the catch-up timeout: marked rolled back
   * fleet-wide, so the fleet follows the newest version that exists and new publishes number
   * above it. Returns true when it did.
   */
  private async abandonIfUnreachable(target: number, desired: DesiredState, err: unknown): Promise<boolean> {
    if (!(err instanceof UnavailableError) || desired.mode !== "follow") return false;
    if (!this.o.lease?.held || this.writerSinceMs === null) return false;
    if (this.now() - this.writerSinceMs < this.o.catchUpTimeoutMs) return false;
    this.log.error({ version: target, err: errorMessage(err) }, "Abandoning a version no node can serve");
    await this.o.coord.setDesired(this.name, {
      mode: "follow",
      version: null,
      rolled_back: [...new Set([...desired.rolled_back, target])].sort((a, b) => a - b),
      resume_from: desired.resume_from,
      by: `${this.o.self.node} (abandoned v${target}: unreachable)`,
    });
    return true;
  }

  /** Checks, once per process, every byte of the segments of `version` not checked yet. */
  private verify(version: number): void {
    const { manifest } = this.o.store.readManifest(version);
    for (const entry of manifest.segments) {
      if (this.checked.has(entry.uuid)) continue;
      checkSegmentFile(this.o.store.segmentPath(entry.uuid), entry, manifest.schema_hash);
      this.checked.add(entry.uuid);
    }
  }

  private retain(): void {
    try {
      this.o.store.gc(this.o.keepVersions);
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, "Retention (gc) failed");
    }
  }

  // ------------------------------------------------------------------------------------------
  // Writer side

  private async seedDesiredState(): Promise<void> {
    if (this.desiredSeeded) return;
    const { store } = this.o;
    const seeded = await this.o.coord.setDesired(
      this.name,
      seedDesired(store.readState(), store.currentVersion(), this.o.self.node),
      { ifAbsent: true },
    );
    if (seeded)
      this.log.info({ mode: seeded.mode, version: seeded.version }, "Seeded the fleet's desired state");
    this.desiredSeeded = true;
  }

  /** Announces retained local versions the registry lacks (never one rolled back here). */
  private async announceLocal(): Promise<void> {
    const { store, coord, lease } = this.o;
    const rolledBack = new Set(store.readState().rolled_back);
    for (const version of store.listVersions()) {
      if (this.announced.has(version) || rolledBack.has(version)) continue;
      const epoch = lease?.epoch;
      if (epoch === null || epoch === undefined) return;
      const loaded = store.readManifest(version);
      const existing = await coord.getAnnouncement(this.name, version);
      if (existing) {
        // Other bytes under this number: a version of ours the fleet replaced; never overwrite it.
        if (existing.sha256 === loaded.sha256) this.announced.add(version);
        continue;
      }
      const bytes = readFileSync(loaded.path);
      const ok = await coord.announceVersion({
        table: this.name,
        version,
        manifest: bytes.toString("utf8"),
        sha256: loaded.sha256,
        segments: loaded.manifest.segments.map((s) => ({
          uuid: s.uuid,
          size: s.size,
          body_crc32: s.body_crc32,
        })),
        node: this.o.self.node,
        address: this.o.self.address,
        epoch,
        announced_at_ms: this.now(),
      });
      if (!ok)
        throw new LeaseLostError(
          this.name,
          epoch,
          "the registry refused the announcement (a newer epoch exists)",
        );
      this.announced.add(version);
      this.log.info({ version, epoch }, "Announced");
    }
  }

  /**
   * Version numbers are the fleet's: the writer's next publish must number above every announced
   * version, also those it does not hold (abandoned, or rolled back before it took over). Only
   * numbers above its newest local version matter, so the local marks stay few.
   */
  private reserveAnnouncedNumbers(announced: readonly number[]): void {
    const newest = Math.max(0, ...this.o.store.listVersions());
    const above = announced.filter((v) => v > newest);
    if (above.length > 0) this.o.store.markRolledBack(above);
  }

  /** Keeps the registry bounded: drops old announcements this writer does not retain. */
  private async forgetOld(announced: readonly number[], desired: DesiredState): Promise<void> {
    const epoch = this.o.lease?.epoch;
    if (epoch === null || epoch === undefined) return;
    const local = new Set(this.o.store.listVersions());
    const keep = new Set(announced.slice(-2 * this.o.keepVersions));
    if (desired.version !== null) keep.add(desired.version);
    const doomed = announced.filter((v) => !keep.has(v) && !local.has(v));
    if (doomed.length > 0) await this.o.coord.forgetVersions(this.name, doomed, epoch);
  }

  private async startIngest(): Promise<void> {
    const { lease, startIngest } = this.o;
    if (!startIngest || !lease || this.ingest || this.ingestStarting) return;
    const epoch = lease.epoch;
    if (epoch === null) return;
    this.ingestStarting = (async () => {
      try {
        this.ingest = await startIngest(this.name, {
          writerEpoch: epoch,
          // The publish gate: this lease, still held, with the epoch ingest stamps.
          beforePublish: () => {
            if (lease.check() !== epoch)
              throw new LeaseLostError(this.name, epoch, "the lease was taken again with a new epoch");
          },
          onPublished: () => void this.schedule(),
        });
        this.ingestEpoch = epoch;
        this.log.info({ epoch }, "Ingest started under the writer lease");
      } catch (err) {
        this.log.error({ err: errorMessage(err) }, "Cannot start ingest");
        throw err;
      } finally {
        this.ingestStarting = null;
      }
    })();
    await this.ingestStarting;
  }

  private async stopIngest(): Promise<void> {
    await this.ingestStarting?.catch(() => undefined);
    const ingest = this.ingest;
    if (!ingest) return;
    this.ingest = null;
    this.log.info({ epoch: this.ingestEpoch }, "Stopping ingest");
    this.ingestEpoch = null;
    await ingest
      .stop()
      .catch((err: unknown) => this.log.error({ err: errorMessage(err) }, "Ingest stop failed"));
  }

  private createdAtOf(version: number): number | null {
    if (version === 0) return null;
    if (this.createdAt?.version !== version) {
      try {
        this.createdAt = { version, ms: this.o.store.readManifest(version).manifest.created_at_ms };
      } catch {
        return null;
      }
    }
    return this.createdAt.ms;
  }
}
