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

/** A row as it will be published: `length` bytes at `at` in `bytes`; bytes null for a delete. */
interface PendingRow {
  bytes: Buffer | null;
  at: number;
  length: number;
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
    this.set(key, eventTimeMs, null, 0, 0);
  }

  /**
   * A whole row, `length` bytes at `at` in `bytes`: it replaces whatever is pending. The bytes
   * are kept, not copied: they must not change afterwards.
   */
  upsert(key: string, eventTimeMs: number, bytes: Buffer, at: number, length: number): void {
    this.set(key, eventTimeMs, bytes, at, length);
  }

  /**
   * A partial row (decoded-batch.ts PATCH): the features whose bit is set in the carried mask
   * right after the row, taken from the row, over the row as it stands. `readStored` is asked
   * only for a key with nothing pending; if it throws, nothing changes.
   */
  patch(
    key: string,
    eventTimeMs: number,
    bytes: Buffer,
    at: number,
    length: number,
    readStored: StoredRowReader,
  ): void {
    const pending = this.rows.get(key);
    let values: FeatureValue[];
    if (!pending) values = readStored(key) ?? this.emptyRow();
    else if (pending.bytes === null) values = this.emptyRow();
    else values = decodeRow(this.layout, pending.bytes, pending.at, pending.length);
    const mask = at + length;
    for (const slot of this.layout.slots) {
      const i = slot.index;
      if ((bytes[mask + (i >> 3)]! & (1 << (i & 7))) !== 0)
        values[i] = readFeature(this.layout, slot, bytes, at, length);
    }
    const row = encodeRow(this.layout, values);
    this.set(key, eventTimeMs, row, 0, row.length);
  }

  /** One change per key, for VersionWriter.publishDelta. */
  *changes(): Generator<RowChange> {
    for (const [key, p] of this.rows) {
      const values = p.bytes === null ? null : p.bytes.subarray(p.at, p.at + p.length);
      yield { key, eventTimeMs: p.eventTimeMs, values };
    }
  }

  clear(): void {
    this.rows.clear();
  }

  private set(key: string, eventTimeMs: number, bytes: Buffer | null, at: number, length: number): void {
    const pending = this.rows.get(key);
    if (!pending) {
      this.rows.set(key, { bytes, at, length, eventTimeMs });
      return;
    }
    pending.bytes = bytes;
    pending.at = at;
    pending.length = length;
    pending.eventTimeMs = eventTimeMs;
  }

  private emptyRow(): FeatureValue[] {
    return new Array<FeatureValue>(this.layout.slots.length).fill(null);
  }
}
