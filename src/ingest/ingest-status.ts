/** What an ingestor reports about one table: freshness, position, counters. */
import type { DeltaProblem } from "./errors.js";

/**
 * - `starting`: opening the table, not consuming yet.
 * - `consuming`: subscribed (or subscribing) to the topic.
 * - `retrying`: the source failed (broker away); consuming again after a backoff.
 * - `pinned`: the table is pinned (`strata rollback` or `pin`): nothing is consumed or published
 *   until `strata resume`.
 * - `stopped`: after `stop()`.
 */
/** `blocked`: the current version has another schema than the config's (it needs `strata compact`). */
export const INGEST_STATES = ["starting", "consuming", "retrying", "pinned", "blocked", "stopped"] as const;
export type IngestState = (typeof INGEST_STATES)[number];

export interface PartitionStatus {
  readonly partition: number;
  /** The next offset to read (published or pending), as a decimal string; null = the earliest. */
  readonly nextOffset: string | null;
  /** The next offset of the version ingest builds on (what a crash would replay from). */
  readonly publishedOffset: string | null;
  /** The partition's high watermark, when known. */
  readonly highWatermark: string | null;
  /** Messages not yet in a published version: high watermark − published offset; null when unknown. */
  readonly lag: number | null;
}

export interface IngestCounters {
  /** Messages read (replayed duplicates not included). */
  readonly messages: number;
  readonly upserts: number;
  readonly deletes: number;
  /** Messages dead-lettered, in total and by problem. */
  readonly deadLetters: number;
  readonly deadLettersByProblem: Readonly<Partial<Record<DeltaProblem, number>>>;
  /** Messages skipped because the version already holds them (a replay after a restart). */
  readonly replayedSkipped: number;
  readonly versionsPublished: number;
  readonly compactions: number;
  readonly publishFailures: number;
  /** Times the source failed (broker away) and was restarted. */
  readonly sourceFailures: number;
}

export interface IngestStatus {
  readonly table: string;
  readonly topic: string;
  readonly deadLetterTopic: string;
  readonly groupId: string;
  readonly state: IngestState;
  /** The version ingest builds on: the current one when it last looked. Null before any. */
  readonly version: number | null;
  /** Σ over partitions of (high watermark − published offset); null until the watermarks are known. */
  readonly kafkaLag: number | null;
  /** Now − the newest event time in `version`, ms; null when the version has no rows. */
  readonly eventTimeLagMs: number | null;
  /** The newest event time in `version`, ms since the epoch. */
  readonly maxEventTimeMs: number | null;
  /** When ingest last published a version, ms since the epoch. */
  readonly lastPublishMs: number | null;
  /** Distinct keys merged but not yet published. */
  readonly pendingRows: number;
  /** Dead letters waiting for the broker's acknowledgement. */
  readonly pendingDeadLetters: number;
  readonly partitions: readonly PartitionStatus[];
  readonly counters: IngestCounters;
  readonly lastError: { readonly message: string; readonly atMs: number } | null;
}
