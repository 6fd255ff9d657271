/**
 * The state of ingest for one table, and every step that touches its files: apply a batch of
 * deltas to the in-memory merge, publish the merge as a delta version with the offsets it
 * includes, compact, apply retention, follow pin / resume / versions made by others. All of it is
 * synchronous, so a publish never interleaves with the application of a batch; ingest-loop.ts
 * drives it from Kafka and a timer.
 *
 * Exactly once into versions: `positions` is the next offset to read per partition. A version's
 * manifest records the positions its rows include, so after a crash ingest starts from the
 * current version's positions and replays what was pending: nothing is lost, and messages the
 * version already holds are skipped by offset. A version includes an offset only once that
 * offset's dead letter (if any) is acknowledged.
 */
import type { TableSchema } from "../format/schema.js";
import { MappedSegmentCache } from "../storage/mapped-segment.js";
import type { KafkaPosition, Manifest } from "../storage/manifest.js";
import type { TableState, TableStore } from "../storage/table-store.js";
import { openSnapshot, type VersionSnapshot } from "../storage/version-snapshot.js";
import { VersionWriter } from "../storage/version-writer.js";
import { SchemaMismatchError, TablePinnedError } from "../storage/errors.js";
import { errorMessage } from "../shared/errors.js";
import { DeltaDecoder } from "./delta-event.js";
import type { DeltaBatch, DeltaMessage } from "./delta-source.js";
import { decodeBatch, DELETE, UPSERT, type DecodedBatch } from "./decoded-batch.js";
import { rowLayout, type RowLayout } from "../format/row-layout.js";
import { deadLetterOf, type DeadLetter } from "./dead-letters.js";
import { InvalidDeltaError, type DeltaProblem } from "./errors.js";
import type { DeltaLimits } from "./feature-coercion.js";
import type { IngestCounters, IngestState, IngestStatus, PartitionStatus } from "./ingest-status.js";
import type { Logger } from "../shared/logger.js";
import { PendingMerge } from "./pending-merge.js";

export interface TableIngestorOptions {
  /** Publish once the oldest pending change is this old. */
  readonly publishIntervalMs: number;
  /** ...or once this many distinct keys are pending. */
  readonly publishMaxRows: number;
  /** Compact when the current version has this many delta segments... */
  readonly compactMaxDeltas: number;
  /** ...or when its delta records pass this fraction of its base records. */
  readonly compactDeltaRatio: number;
  /** Versions retention keeps after each publish. */
  readonly keepVersions: number;
  readonly limits: DeltaLimits;
  readonly deadLetterTopic: string;
  readonly groupId: string;
  /**
   * Fleet fencing (docs/fleet.md; set by src/control when this process holds the table's writer
   * lease): the lease epoch stamped into every manifest published here (0 on one host)...
   */
  readonly writerEpoch?: number;
  /** ...and a gate run before each publish and compaction, which throws once the lease is lost. */
  readonly beforePublish?: () => void;
}

/** What a call to {@link TableIngestor.publish} did. */
export type PublishOutcome =
  | { kind: "published"; versions: Manifest[] }
  /** Nothing new to publish, or not due yet. */
  | { kind: "idle" }
  /** Dead letters of included offsets are not acknowledged yet. */
  | { kind: "waiting_for_dead_letters" }
  /** The table got pinned: the merge was dropped; stop consuming. */
  | { kind: "pinned" }
  /** The current version has another schema than the config's: the merge was dropped; stop consuming. */
  | { kind: "blocked" }
  /** Another process moved `current`: the merge was dropped and positions reloaded; consume again from them. */
  | { kind: "moved" }
  | { kind: "failed"; error: unknown };

/** The publish interval while a backlog is being caught up (unless the configured one is longer). */
export const CATCH_UP_PUBLISH_INTERVAL_MS = 2_000;

type MutableCounters = { -readonly [K in keyof IngestCounters]: IngestCounters[K] } & {
  deadLettersByProblem: Partial<Record<DeltaProblem, number>>;
};

export class TableIngestor {
  readonly table: string;
  readonly topic: string;
  private readonly log: Logger;
  private readonly writer: VersionWriter;
  private readonly decoder: DeltaDecoder;
  private readonly layout: RowLayout;
  private readonly cache = new MappedSegmentCache();
  private readonly pending: PendingMerge;

  /** `blocked`: the current version was written with another schema than the config's. */
  private mode: "consuming" | "pinned" | "blocked" = "consuming";
  /** The table's state file did not parse when last read (said once, not every tick). */
  private stateCorrupt = false;
  /** The current version when ingest got blocked: a new one may unblock it. */
  private blockedOn: number | null = null;
  private loopState: IngestState = "starting";
  /** Bumped whenever positions are reloaded: batches fetched before are dropped. */
  private generationCounter = 0;

  /** The version the merge is built on, and its snapshot (to fill partial upserts). */
  private basis: number | null = null;
  private snapshot: VersionSnapshot | null = null;
  /** Next offset to read per partition: what `basis` holds plus what is pending. */
  private positions = new Map<number, bigint>();
  /** Next offset per partition recorded in `basis`'s manifest. */
  private published = new Map<number, bigint>();
  /** Positions moved (or rows merged) since the last publish. */
  private dirty = false;
  private dirtySinceMs: number | null = null;

  /** Dead letters of applied offsets, waiting for the broker's acknowledgement. */
  private outbox: DeadLetter[] = [];

  private readonly highWatermarks = new Map<number, bigint>();
  private maxEventTimeMs: number | null = null;
  private lastPublishMs: number | null = null;
  private lastError: { message: string; atMs: number } | null = null;
  private readonly counters: MutableCounters = {
    messages: 0,
    upserts: 0,
    deletes: 0,
    deadLetters: 0,
    deadLettersByProblem: {},
    replayedSkipped: 0,
    versionsPublished: 0,
    compactions: 0,
    publishFailures: 0,
    sourceFailures: 0,
  };

  constructor(
    private readonly store: TableStore,
    private readonly schema: TableSchema,
    private readonly options: TableIngestorOptions,
    logger: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.table = schema.name;
    this.topic = schema.topic;
    this.log = logger.child({ table: schema.name, topic: schema.topic });
    this.writer = new VersionWriter(store, schema);
    this.decoder = new DeltaDecoder(schema, options.limits);
    this.layout = rowLayout(schema);
    this.pending = new PendingMerge(this.layout);
  }

  /**
   * Loads the current version and the table's state. Throws when the current version cannot be
   * read; one of another schema than the config's blocks ingest (it cannot merge onto it) until
   * `current` moves to one of the config's schema (`strata compact` writes one).
   */
  open(): void {
    this.store.ensureLayout();
    if (!this.reloadOrBlock()) return;
    const state = this.tableState();
    // A `resume --from latest` not acted on yet (a crash in between) waits for the loop, which
    // knows the latest offsets: treat it as pinned until then.
    this.mode = state.pinned || state.resume_from === "latest" ? "pinned" : "consuming";
    this.loopState = this.mode === "pinned" ? "pinned" : "starting";
  }

  /**
   * The table's state; one whose file does not parse reads as pinned, since it may hold a pin:
   * nothing is published until the file is mended (the error is in the status, logged once).
   */
  private tableState(): TableState {
    try {
      const state = this.store.readState();
      if (this.stateCorrupt) this.log.info({}, "Table state readable again");
      this.stateCorrupt = false;
      return state;
    } catch (err) {
      if (!this.stateCorrupt) {
        this.noteError(err);
        this.log.error(
          { err: errorMessage(err) },
          "Table state unreadable: publishing nothing until it is mended",
        );
      }
      this.stateCorrupt = true;
      return { ...this.store.emptyState(), pinned: true };
    }
  }

  get generation(): number {
    return this.generationCounter;
  }

  /** Pinned or blocked: not consuming. */
  get isPaused(): boolean {
    return this.mode !== "consuming";
  }

  get isBlocked(): boolean {
    return this.mode === "blocked";
  }

  /** Where partition `partition` starts: the next offset to read, or undefined = the earliest. */
  positionOf(partition: number): bigint | undefined {
    return this.positions.get(partition);
  }

  setLoopState(state: IngestState): void {
    this.loopState = state;
  }

  noteSourceFailure(err: unknown): void {
    this.counters.sourceFailures++;
    this.noteError(err);
  }

  noteWatermarks(marks: readonly { partition: number; high: bigint }[]): void {
    for (const m of marks) this.highWatermarks.set(m.partition, m.high);
  }

  // ------------------------------------------------------------------------------------------
  // Applying deltas

  /**
   * Applies a batch to the merge, in offset order; an invalid message becomes a dead letter in the
   * outbox. Messages below the partition's position are already held and skipped. `decoded` is
   * the batch as decoded off the event loop (decode-pool.ts); without it the batch is decoded
   * here. Never throws on input.
   */
  applyBatch(batch: DeltaBatch, decoded?: DecodedBatch): void {
    if (this.mode !== "consuming" || batch.topic !== this.topic) return;
    const { partition, messages } = batch;
    this.highWatermarks.set(partition, batch.highWatermark);
    const rows = decoded ?? decodeBatch(this.decoder, this.layout, messages);
    const rowBytes = Buffer.from(rows.rows.buffer, rows.rows.byteOffset, rows.rows.byteLength);
    let problem = 0;
    const start = this.positions.get(partition);
    let last: bigint | null = null;
    for (let i = 0; i < messages.length; i++) {
      const message = messages[i]!;
      const refused = rows.problems[problem]?.index === i ? rows.problems[problem++]! : null;
      if (start !== undefined && message.offset < start) {
        this.counters.replayedSkipped++;
        continue;
      }
      this.counters.messages++;
      last = message.offset;
      if (refused) {
        if (refused.problem === "internal_error")
          this.log.error({ partition, offset: String(message.offset), err: refused.reason }, "Decoder bug");
        this.deadLetter(partition, message, refused.problem, refused.reason);
        continue;
      }
      const key = rows.keys[i]!;
      const eventTimeMs = rows.eventTimes[i]!;
      const kind = rows.kinds[i];
      if (kind === DELETE) {
        this.pending.delete(key, eventTimeMs);
        this.counters.deletes++;
        continue;
      }
      const at = rows.rowSpans[i * 2]!;
      const length = rows.rowSpans[i * 2 + 1]!;
      if (kind === UPSERT) this.pending.upsert(key, eventTimeMs, rowBytes, at, length);
      else {
        try {
          this.pending.patch(key, eventTimeMs, rowBytes, at, length, this.readStored);
        } catch (err) {
          if (err instanceof InvalidDeltaError) this.deadLetter(partition, message, err.problem, err.message);
          else {
            this.log.error({ partition, offset: String(message.offset), err }, "Merge bug");
            this.deadLetter(
              partition,
              message,
              "internal_error",
              `The merge failed unexpectedly: ${errorMessage(err)}`,
            );
          }
          continue;
        }
      }
      this.counters.upserts++;
    }
    if (last !== null) {
      this.positions.set(partition, last + 1n);
      if (!this.dirty) {
        this.dirty = true;
        this.dirtySinceMs = this.now();
      }
    }
  }

  private deadLetter(partition: number, message: DeltaMessage, problem: DeltaProblem, reason: string): void {
    this.outbox.push(deadLetterOf(this.table, this.topic, partition, message, problem, reason));
    this.counters.deadLetters++;
    this.counters.deadLettersByProblem[problem] = (this.counters.deadLettersByProblem[problem] ?? 0) + 1;
  }

  /** The stored row a partial upsert fills from; a row that fails its CRC check is not merged onto. */
  private readonly readStored = (key: string) => {
    if (!this.snapshot) return null;
    const row = this.snapshot.get(key);
    if (row.status === "found") return row.values;
    if (row.status === "absent") return null;
    throw new InvalidDeltaError(
      "stored_row_corrupt",
      `Cannot merge a partial upsert of key ${JSON.stringify(key)}: its stored row in version ${this.basis} fails its CRC check`,
    );
  };

  /** Dead letters to send before the offsets they stand for may be published. */
  takeDeadLetters(): DeadLetter[] {
    return this.outbox.slice();
  }

  /** Drops the first `count` dead letters once the broker has acknowledged them. */
  acknowledgeDeadLetters(sent: readonly DeadLetter[]): void {
    // Compare by identity: a reload may have emptied the outbox while they were in flight.
    if (sent.length > 0 && this.outbox[0] === sent[0]) this.outbox.splice(0, sent.length);
  }

  get pendingDeadLetters(): number {
    return this.outbox.length;
  }

  /**
   * True when a publish is due: something changed and it is old or big enough. While a backlog is
   * being caught up, the interval is {@link CATCH_UP_PUBLISH_INTERVAL_MS} (at least): what is read
   * is already as stale as the backlog, and every publish costs a segment, an fsync and, every
   * `compactMaxDeltas` publishes, a rewrite of the table.
   */
  publishDue(): boolean {
    if (!this.dirty || this.mode !== "consuming") return false;
    if (this.pending.size >= this.options.publishMaxRows) return true;
    const age = this.now() - (this.dirtySinceMs ?? 0);
    if (age < this.options.publishIntervalMs) return false;
    return age >= CATCH_UP_PUBLISH_INTERVAL_MS || !this.catchingUp();
  }

  // ------------------------------------------------------------------------------------------
  // Publishing

  /**
   * Publishes the merge as a delta version whose manifest records `positions`, then compacts when
   * due and applies retention. Re-reads the table's state first: a pinned table publishes
   * nothing, and a `current` moved by another process makes ingest start over from it.
   */
  publish(): PublishOutcome {
    if (this.mode !== "consuming" || !this.dirty) return { kind: "idle" };
    if (this.outbox.length > 0) return { kind: "waiting_for_dead_letters" };
    const moved = this.followTableState();
    if (moved) return moved;
    let manifest: Manifest;
    try {
      this.options.beforePublish?.(); // fleet: refused once the writer lease is lost (the merge is kept)
      manifest = this.writer.publishDelta(
        this.pending.changes(),
        this.kafkaPosition(),
        this.basis,
        this.options.writerEpoch ?? 0,
      );
    } catch (err) {
      return this.publishFailed(err);
    }
    this.log.debug({ version: manifest.version, rows: manifest.segments.at(-1)?.records }, "Published");
    this.adopt(manifest);
    this.counters.versionsPublished++;
    const versions = [manifest];
    const compacted = this.compactIfDue(manifest);
    if (compacted) versions.push(compacted);
    this.applyRetention();
    return { kind: "published", versions };
  }

  /**
   * Checks the table's state before a publish (and on every tick): pinned → drop the merge and
   * stop; `current` moved by someone else (an import, a compaction or rollback from the CLI) →
   * start over from it. Returns null when ingest may go on.
   */
  followTableState(): PublishOutcome | null {
    if (this.mode !== "consuming") return null;
    if (this.tableState().pinned) {
      this.enterPinned();
      return { kind: "pinned" };
    }
    if (this.store.currentVersion() !== this.basis) {
      this.log.info(
        { from: this.basis, to: this.store.currentVersion() },
        "Current version moved: replaying from its offsets",
      );
      return this.reloadOrBlock() ? { kind: "moved" } : { kind: "blocked" };
    }
    return null;
  }

  private publishFailed(err: unknown): PublishOutcome {
    if (err instanceof TablePinnedError) {
      this.enterPinned();
      return { kind: "pinned" };
    }
    if (this.store.currentVersion() !== this.basis) {
      // Lost a race with another publisher (VersionWriter refuses a stale parent).
      return this.reloadOrBlock() ? { kind: "moved" } : { kind: "blocked" };
    }
    this.counters.publishFailures++;
    this.noteError(err);
    this.log.error({ err, pendingRows: this.pending.size }, "Publish failed: keeping the merge, retrying");
    return { kind: "failed", error: err };
  }

  private compactIfDue(manifest: Manifest): Manifest | null {
    const deltas = manifest.segments.filter((s) => s.kind === "delta");
    if (deltas.length === 0) return null;
    const baseRecords = manifest.segments.filter((s) => s.kind === "base").reduce((n, s) => n + s.records, 0);
    const deltaRecords = deltas.reduce((n, s) => n + s.records, 0);
    // While a backlog is being caught up, only the count rule applies: on a stream that updates
    // the same keys over and over, every delta is as big as the base, and the ratio rule would
    // rewrite the whole table after nearly every publish (compaction runs on this thread, so it
    // slows the catch-up down). The count rule still bounds the deltas a lookup probes.
    const due =
      deltas.length >= this.options.compactMaxDeltas ||
      (deltaRecords > baseRecords * this.options.compactDeltaRatio && !this.catchingUp());
    if (!due) return null;
    try {
      this.options.beforePublish?.(); // fleet: a compaction is a publish too
      const compacted = this.writer.compact();
      this.adopt(compacted);
      this.counters.compactions++;
      this.log.debug(
        { version: compacted.version, deltas: deltas.length, deltaRecords, baseRecords },
        "Compacted",
      );
      return compacted;
    } catch (err) {
      // The delta version stands; compaction is tried again after the next publish.
      this.noteError(err);
      this.log.warn({ err }, "Compaction failed");
      if (this.store.currentVersion() !== this.basis) this.reloadOrBlock();
      return null;
    }
  }

  /** True when Kafka holds more unread messages than one publish's worth (known from the watermarks). */
  private catchingUp(): boolean {
    let unread = 0n;
    for (const [partition, high] of this.highWatermarks) {
      const next = this.positions.get(partition) ?? 0n;
      if (high > next) unread += high - next;
    }
    return unread > BigInt(this.options.publishMaxRows);
  }

  private applyRetention(): void {
    try {
      this.store.gc(this.options.keepVersions);
    } catch (err) {
      this.noteError(err);
      this.log.warn({ err }, "Retention (gc) failed");
    }
  }

  /** Makes a version this ingestor just published the one it builds on. */
  private adopt(manifest: Manifest): void {
    this.basis = manifest.version;
    this.snapshot = openSnapshot(this.store, this.cache, manifest.version, {
      verify: false,
      schema: this.schema,
    });
    this.published = offsetsOf(manifest, this.topic);
    this.pending.clear();
    this.dirty = false;
    this.dirtySinceMs = null;
    this.maxEventTimeMs = maxEventTime(manifest);
    this.lastPublishMs = this.now();
  }

  private kafkaPosition(): KafkaPosition {
    const offsets: Record<string, string> = {};
    for (const [p, o] of [...this.positions].sort((a, b) => a[0] - b[0])) offsets[String(p)] = o.toString();
    return { topic: this.topic, offsets };
  }

  // ------------------------------------------------------------------------------------------
  // Pin, resume, reload

  /**
   * Starts over from the current version: drops the merge and the outbox (a replay from the
   * version's offsets makes them again) and takes its positions.
   */
  reload(): void {
    const current = this.store.currentVersion();
    if (current === null) {
      this.basis = null;
      this.snapshot = null;
      this.published = new Map();
      this.maxEventTimeMs = null;
    } else {
      const snapshot = openSnapshot(this.store, this.cache, current, { verify: false, schema: this.schema });
      snapshot.requireReaderSchema("ingest merges deltas only onto rows of the config's schema");
      this.basis = current;
      this.snapshot = snapshot;
      this.published = offsetsOf(snapshot.manifest, this.topic);
      this.maxEventTimeMs = maxEventTime(snapshot.manifest);
      if (snapshot.manifest.kafka && snapshot.manifest.kafka.topic !== this.topic) {
        this.log.warn(
          { version: current, manifestTopic: snapshot.manifest.kafka.topic },
          "The current version was read from another topic: consuming the configured topic from its earliest offsets",
        );
      }
    }
    this.positions = new Map(this.published);
    this.pending.clear();
    this.outbox = [];
    this.dirty = false;
    this.dirtySinceMs = null;
    this.generationCounter++;
  }

  /** reload(), or blocked when the current version has another schema: false then. */
  private reloadOrBlock(): boolean {
    try {
      this.reload();
      return true;
    } catch (err) {
      if (!(err instanceof SchemaMismatchError)) throw err;
      this.blockedOn = this.store.currentVersion();
      this.noteError(err);
      this.log.error(
        { version: this.blockedOn, droppedRows: this.pending.size, err: err.message },
        "Ingest blocked",
      );
      this.mode = "blocked";
      this.loopState = "blocked";
      this.dropMerge();
      return false;
    }
  }

  /** While blocked: opens the table again once `current` has moved. */
  retryBlocked(): void {
    if (this.mode !== "blocked" || this.store.currentVersion() === this.blockedOn) return;
    const from = this.blockedOn;
    this.mode = "consuming";
    this.open(); // blocked again if the new version has another schema too
    if (!this.isBlocked) this.log.info({ from, to: this.basis }, "Current version moved: ingest unblocked");
  }

  private enterPinned(): void {
    this.log.info(
      { version: this.store.currentVersion(), droppedRows: this.pending.size },
      "Table pinned: ingest paused",
    );
    this.mode = "pinned";
    this.loopState = "pinned";
    this.dropMerge();
  }

  /** Drops what was merged and not published (Kafka replays it) and the batches in flight. */
  private dropMerge(): void {
    this.pending.clear();
    this.outbox = [];
    this.dirty = false;
    this.dirtySinceMs = null;
    this.generationCounter++;
  }

  /**
   * While pinned: what `strata resume` asked for, or null while the table is still pinned.
   * "latest" means: skip to the newest offsets (the loop fetches them, then calls {@link resumeAt}).
   */
  resumeRequest(): "version" | "latest" | null {
    if (this.mode !== "pinned") return null;
    const state = this.tableState();
    if (state.pinned) return null;
    return state.resume_from;
  }

  /**
   * Leaves the pinned mode: reloads the current version, and with `latest` offsets, publishes at
   * once a version that records them (so a crash cannot take ingest back to the older ones), then
   * clears the request.
   */
  resumeAt(latest: ReadonlyMap<number, bigint> | null): PublishOutcome {
    if (!this.reloadOrBlock()) return { kind: "blocked" };
    this.mode = "consuming";
    this.loopState = "starting";
    if (latest === null) {
      this.log.info({ version: this.basis }, "Resumed from the current version's offsets");
      return { kind: "idle" };
    }
    for (const [p, o] of latest) this.positions.set(p, o);
    this.dirty = true;
    this.dirtySinceMs = this.now();
    const outcome = this.publish();
    if (outcome.kind === "published") {
      this.store.clearResumeFrom();
      this.log.info({ version: this.basis }, "Resumed from the latest offsets");
    } else if (outcome.kind !== "pinned") {
      // Try again on the next tick, from the pinned mode.
      this.mode = "pinned";
      this.loopState = "pinned";
    }
    return outcome;
  }

  // ------------------------------------------------------------------------------------------
  // Status

  noteError(err: unknown): void {
    this.lastError = { message: errorMessage(err), atMs: this.now() };
  }

  status(): IngestStatus {
    const partitions = new Set([...this.positions.keys(), ...this.highWatermarks.keys()]);
    let kafkaLag: number | null = 0;
    const rows: PartitionStatus[] = [...partitions]
      .sort((a, b) => a - b)
      .map((partition) => {
        const next = this.positions.get(partition);
        const done = this.published.get(partition);
        const high = this.highWatermarks.get(partition);
        // A partition never read from: all of it is lag (up to retention, which we cannot see here).
        const lag = high === undefined ? null : Number(high - (done ?? 0n) > 0n ? high - (done ?? 0n) : 0n);
        if (lag === null) kafkaLag = null;
        else if (kafkaLag !== null) kafkaLag += lag;
        return {
          partition,
          nextOffset: next?.toString() ?? null,
          publishedOffset: done?.toString() ?? null,
          highWatermark: high?.toString() ?? null,
          lag,
        };
      });
    if (rows.length === 0) kafkaLag = null;
    return {
      table: this.table,
      topic: this.topic,
      deadLetterTopic: this.options.deadLetterTopic,
      groupId: this.options.groupId,
      state: this.loopState,
      version: this.basis,
      kafkaLag,
      eventTimeLagMs: this.maxEventTimeMs === null ? null : Math.max(0, this.now() - this.maxEventTimeMs),
      maxEventTimeMs: this.maxEventTimeMs,
      lastPublishMs: this.lastPublishMs,
      pendingRows: this.pending.size,
      pendingDeadLetters: this.outbox.length,
      partitions: rows,
      counters: { ...this.counters, deadLettersByProblem: { ...this.counters.deadLettersByProblem } },
      lastError: this.lastError,
    };
  }

  /** The positions a publish now would record (for committing to the consumer group). */
  publishedPositions(): ReadonlyMap<number, bigint> {
    return this.published;
  }
}

/** Partition → next offset of a manifest, when it was read from `topic`. */
function offsetsOf(manifest: Manifest, topic: string): Map<number, bigint> {
  const out = new Map<number, bigint>();
  if (!manifest.kafka || manifest.kafka.topic !== topic) return out;
  for (const [p, o] of Object.entries(manifest.kafka.offsets)) out.set(Number(p), BigInt(o));
  return out;
}

/** The newest event time of a version's records, or null when it has none. */
function maxEventTime(manifest: Manifest): number | null {
  let max: number | null = null;
  for (const s of manifest.segments) {
    if (s.records + s.tombstones > 0 && (max === null || s.max_event_time_ms > max))
      max = s.max_event_time_ms;
  }
  return max;
}
