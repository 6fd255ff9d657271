/**
 * The in-memory merge of delta events between two publishes. Each key holds its full row as it
 * will be published (row-layout bytes, or null for a delete), so the next version is one change
 * per key: the last write by offset wins, and a partial upsert fills the features it does not
 * carry from the row as it stands (pending, else stored in the version being built on).
 *
 * Rows arrive encoded (decoded-batch.ts), so a whole-row upsert is kept as its bytes and written
 * to the segment as they are; only a partial upsert decodes rows to merge them.
 *
 * Every operation assigns; nothing adds. So applying the same run of events twice leaves what
 * applying it once does, which is what makes a replay after a crash harmless.
 */
import { decodeRow, encodeRow, readFeature, type RowLayout } from "../format/row-layout.js";
import type { FeatureValue } from "../format/schema.js";
import type { RowChange } from "../storage/version-writer.js";

/** The stored row of a key in the version being built on: its values, or null when absent. */
export type StoredRowReader = (key: string) => FeatureValue[] | null;

interface PendingRow {
  row: Buffer | null;
  eventTimeMs: number;
}

export class PendingMerge {
  private readonly rows = new Map<string, PendingRow>();

  constructor(private readonly layout: RowLayout) {}

  /** Distinct keys pending. */
  get size(): number {
    return this.rows.size;
  }

  delete(key: string, eventTimeMs: number): void {
    this.set(key, null, eventTimeMs);
  }

  /** A whole row: it replaces whatever is pending. `row` must not change afterwards. */
  upsert(key: string, eventTimeMs: number, row: Buffer): void {
    this.set(key, row, eventTimeMs);
  }

  /**
   * A partial row: the features whose bit is set in `carried` (bit i % 8 of byte i / 8), taken
   * from `row`, over the row as it stands. `readStored` is asked only for a key with nothing
   * pending; if it throws, nothing changes.
   */
  patch(
    key: string,
    eventTimeMs: number,
    row: Buffer,
    carried: Uint8Array,
    readStored: StoredRowReader,
  ): void {
    const pending = this.rows.get(key);
    let values: FeatureValue[];
    if (pending) values = pending.row === null ? this.emptyRow() : decodeRow(this.layout, pending.row);
    else values = readStored(key) ?? this.emptyRow();
    for (const slot of this.layout.slots) {
      const i = slot.index;
      if ((carried[i >> 3]! & (1 << (i & 7))) !== 0)
        values[i] = readFeature(this.layout, slot, row, 0, row.length);
    }
    this.set(key, encodeRow(this.layout, values), eventTimeMs);
  }

  /** One change per key, for VersionWriter.publishDelta. */
  *changes(): Generator<RowChange> {
    for (const [key, p] of this.rows) yield { key, eventTimeMs: p.eventTimeMs, values: p.row };
  }

  clear(): void {
    this.rows.clear();
  }

  private set(key: string, row: Buffer | null, eventTimeMs: number): void {
    const pending = this.rows.get(key);
    if (pending) {
      pending.row = row;
      pending.eventTimeMs = eventTimeMs;
    } else this.rows.set(key, { row, eventTimeMs });
  }

  private emptyRow(): FeatureValue[] {
    return new Array<FeatureValue>(this.layout.slots.length).fill(null);
  }
}
