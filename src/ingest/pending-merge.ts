/**
 * The in-memory merge of delta events between two publishes. Each key holds its full row as it
 * will be published (values in schema order, or null for a delete), so the next version is one
 * change per key: the last write by offset wins, and a partial upsert fills the features it does
 * not carry from the row as it stands (pending, else stored in the version being built on).
 *
 * Every operation assigns; nothing adds. So applying the same run of events twice leaves what
 * applying it once does, which is what makes a replay after a crash harmless.
 */
import type { FeatureValue } from "../format/schema.js";
import type { RowChange } from "../storage/version-writer.js";
import type { DeltaEvent } from "./delta-event.js";

/** The stored row of a key in the version being built on: its values, or null when absent. */
export type StoredRowReader = (key: string) => FeatureValue[] | null;

interface PendingRow {
  values: FeatureValue[] | null;
  eventTimeMs: number;
}

export class PendingMerge {
  private readonly rows = new Map<string, PendingRow>();

  constructor(private readonly featureCount: number) {}

  /** Distinct keys pending. */
  get size(): number {
    return this.rows.size;
  }

  /**
   * Applies one event on top of what is pending. `readStored` is asked only for a partial upsert
   * of a key with nothing pending; if it throws, nothing changes.
   */
  apply(event: DeltaEvent, readStored: StoredRowReader): void {
    const { key, eventTimeMs } = event;
    if (event.op === "delete") {
      this.rows.set(key, { values: null, eventTimeMs });
      return;
    }
    const pending = this.rows.get(key);
    if (event.complete) {
      // The event's array is fresh per event and has no holes: it becomes the row.
      const values = event.features as FeatureValue[];
      if (pending) {
        pending.values = values;
        pending.eventTimeMs = eventTimeMs;
      } else this.rows.set(key, { values, eventTimeMs });
      return;
    }
    let values: FeatureValue[];
    if (pending) values = pending.values ?? this.emptyRow();
    else values = readStored(key) ?? this.emptyRow();
    const features = event.features;
    for (let i = 0; i < features.length; i++) {
      const v = features[i];
      if (v !== undefined) values[i] = v;
    }
    if (pending) {
      pending.values = values;
      pending.eventTimeMs = eventTimeMs;
    } else this.rows.set(key, { values, eventTimeMs });
  }

  /** The row pending for `key`: undefined when none, values null for a delete. */
  get(key: string): { values: FeatureValue[] | null; eventTimeMs: number } | undefined {
    return this.rows.get(key);
  }

  /** One change per key, for VersionWriter.publishDelta. */
  *changes(): Generator<RowChange> {
    for (const [key, row] of this.rows) yield { key, eventTimeMs: row.eventTimeMs, values: row.values };
  }

  clear(): void {
    this.rows.clear();
  }

  private emptyRow(): FeatureValue[] {
    return new Array<FeatureValue>(this.featureCount).fill(null);
  }
}
