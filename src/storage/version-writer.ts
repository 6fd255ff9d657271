/**
 * Makes new versions of one table: a base from imported rows, a delta from ingested changes, a
 * compacted base from a version's segments. Segments are written and checked in full before the
 * manifest that lists them; publishing a delta costs O(delta): the new manifest reuses the
 * parent's segment files.
 */
import { rmSync } from "node:fs";
import {
  ENCODE_PARTS,
  PartedRecords,
  SegmentFileWriter,
  isPartsEncodable,
  segmentEntryOf,
  type WrittenSegment,
} from "./segment-file-writer.js";
import { MappedSegmentCache } from "./mapped-segment.js";
import { openSnapshot, type VersionSnapshot } from "./version-snapshot.js";
import type { TableStore } from "./table-store.js";
import type { KafkaPosition, Manifest, SegmentEntry, VersionReason } from "./manifest.js";
import { decodeRow, rowLayout, type RowLayout } from "../format/row-layout.js";
import { schemaHash, type FeatureValue, type TableSchema } from "../format/schema.js";
import { RECORD_HEADER_BYTES, type SegmentKind } from "../format/segment-layout.js";
import { SegmentCorruptError } from "../format/errors.js";
import { EmptyImportError, TablePinnedError } from "./errors.js";
import { checkSegmentFile } from "./segment-check.js";
import { hashKeyRange } from "../format/key-hash.js";
import {
  ENCODE_INTO,
  isEncodableRows,
  type RowContent,
  type SegmentEncoder,
} from "../format/segment-encoder.js";

/** A row to write, or with `values` null a delete. `values` are full rows in schema order. */
export interface RowChange {
  key: string;
  eventTimeMs: number;
  /** Null: a delete. */
  values: RowContent | null;
}

/** Splits a base well under the 2 GiB segment limit (segment-layout.ts MAX_SEGMENT_BYTES). */
export const DEFAULT_MAX_SEGMENT_BYTES = 1 << 30;

export interface ImportOptions {
  maxSegmentBytes?: number;
  /** Called after each batch with the rows written so far. */
  onProgress?: (rows: number) => void;
  /** Publish a base without rows (it empties the table); otherwise EmptyImportError. */
  allowEmpty?: boolean;
}

export interface CompactOptions {
  maxSegmentBytes?: number;
  /**
   * Rows whose newest write is older than this (event time, ms) are left out: rows past the
   * table's max_age_ms, which servers answer as OUTSIDE_MAX_AGE, are then gone (NOT_FOUND).
   */
  expireBeforeMs?: number;
}

export class VersionWriter {
  private readonly layout: RowLayout;
  private readonly schemaHash: string;

  constructor(
    private readonly store: TableStore,
    private readonly schema: TableSchema,
  ) {
    this.layout = rowLayout(schema);
    this.schemaHash = schemaHash(schema);
  }

  /** Writes `batches` as a new base and publishes it. Duplicate keys: the last row wins. */
  async importRows(
    batches: AsyncIterable<readonly RowChange[]>,
    options: ImportOptions = {},
  ): Promise<Manifest> {
    this.store.refuseIfPinned(); // before writing a file a pinned table's publish would refuse
    this.store.ensureLayout();
    this.store.cleanLeftovers(); // what an import killed before us left behind
    const maxBytes = options.maxSegmentBytes ?? DEFAULT_MAX_SEGMENT_BYTES;
    if (isPartsEncodable(batches)) {
      const parts = await batches[ENCODE_PARTS](
        {
          dataDir: this.store.dataDir,
          encoder: {
            kind: "base",
            tableName: this.schema.name,
            schemaHash: this.schemaHash,
            layout: this.layout,
            baseUuid: null,
          },
          maxBytes,
        },
        options.onProgress,
      );
      if (parts !== null) {
        // Each part was checked against its entry by the thread that wrote it.
        return this.publishImport(parts.map(segmentEntryOf), false, options);
      }
    }
    const written: WrittenSegment[] = [];
    let part = this.newSegment("base", null);
    let rows = 0;
    try {
      if (isEncodableRows(batches)) {
        // Rows typed straight into records (importer/import-reader.ts); a new part when one is full.
        const next = (): SegmentEncoder => {
          written.push(part.finish());
          part = this.newSegment("base", null);
          return part.records;
        };
        await batches[ENCODE_INTO](
          new PartedRecords(part.records, maxBytes, next),
          this.layout,
          options.onProgress,
        );
        written.push(part.finish());
        return this.publishImport(written.map(segmentEntryOf), true, options);
      }
      for await (const batch of batches) {
        for (const row of batch) {
          if (part.estimatedBytes > maxBytes) {
            written.push(part.finish());
            part = this.newSegment("base", null);
          }
          part.add(row.key, row.eventTimeMs, row.values);
        }
        rows += batch.length;
        options.onProgress?.(rows);
      }
      written.push(part.finish());
    } catch (err) {
      part.abort();
      throw err;
    }
    return this.publishImport(written.map(segmentEntryOf), true, options);
  }

  /**
   * Publishes an import's parts as the new base (with the parent's Kafka offsets), unless it has
   * no rows and that was not asked for: then its files are removed and nothing is published.
   * `check`: the parts still need checking against the disk.
   */
  private publishImport(entries: SegmentEntry[], check: boolean, options: ImportOptions): Manifest {
    if (!options.allowEmpty && entries.every((e) => e.records === 0)) {
      for (const e of entries) rmSync(this.store.segmentPath(e.uuid), { force: true });
      throw new EmptyImportError(this.schema.name);
    }
    const parent = this.currentManifest();
    try {
      return this.publish("import", entries, check ? entries : [], parent?.kafka ?? null, undefined);
    } catch (err) {
      // Pinned while the import ran: refused before anything was written, so no manifest lists
      // its files.
      if (err instanceof TablePinnedError)
        for (const e of entries) rmSync(this.store.segmentPath(e.uuid), { force: true });
      throw err;
    }
  }

  /**
   * Publishes `changes` (already merged: one change per key) as a delta on the current version.
   * `expectParent` refuses the publish if `current` moved since the changes were merged on it.
   */
  publishDelta(
    changes: Iterable<RowChange>,
    kafka: KafkaPosition | null,
    expectParent: number | null,
    writerEpoch = 0,
  ): Manifest {
    const parent = expectParent === null ? null : this.store.readManifest(expectParent).manifest;
    const baseUuid = parent?.segments.find((s) => s.kind === "base")?.uuid ?? null;
    const segment = this.newSegment(parent ? "delta" : "base", baseUuid);
    try {
      for (const c of changes) {
        if (parent || c.values !== null) segment.add(c.key, c.eventTimeMs, c.values); // nothing to delete yet
      }
    } catch (err) {
      segment.abort();
      throw err;
    }
    const entry = segmentEntryOf(segment.finish());
    return this.publish(
      "ingest",
      [...(parent?.segments ?? []), entry],
      [entry],
      kafka,
      expectParent,
      writerEpoch,
    );
  }

  /**
   * Merges the current version's segments into one new base (split at the size limit), dropping
   * tombstones and shadowed rows, and publishes it with the same Kafka offsets. A version written
   * with another schema is rewritten in this writer's (the config's): features it lacks are null,
   * features the config dropped are left out (a feature that changed type refuses it).
   * `expired` in the result counts the rows `expireBeforeMs` left out.
   */
  compact(options: CompactOptions = {}): Manifest & { expired: number } {
    const current = this.store.requireCurrentVersion();
    // Not verified up front: the rewrite reads every record through its CRC and refuses on damage.
    const snapshot = openSnapshot(this.store, new MappedSegmentCache(), current, {
      verify: false,
      schema: this.schema,
    });
    const { written, expired } = this.rewrite(
      snapshot,
      options.maxSegmentBytes ?? DEFAULT_MAX_SEGMENT_BYTES,
      options.expireBeforeMs ?? -Infinity,
    );
    const entries = written.map(segmentEntryOf);
    const manifest = this.publish(
      "compact",
      entries,
      entries,
      snapshot.manifest.kafka,
      current,
      snapshot.manifest.writer_epoch,
    );
    return { ...manifest, expired };
  }

  /**
   * The live rows of `snapshot` into new base parts. Each segment's body is checked against its
   * trailer CRC first, in one native pass (a damaged segment refuses the compaction), so records
   * are then read without a CRC each. Segments are read newest first, and a key is written from
   * the first one that holds it (a tombstone there drops it): the keys seen so far are kept in a
   * table of their index fingerprints, not looked up again in every newer segment.
   */
  private rewrite(
    snapshot: VersionSnapshot,
    maxBytes: number,
    expireBeforeMs: number,
  ): { written: WrittenSegment[]; expired: number } {
    for (const seg of snapshot.segments) {
      try {
        seg.verifyBody();
      } catch (err) {
        if (!(err instanceof SegmentCorruptError)) throw err;
        throw new SegmentCorruptError(
          `Cannot compact version ${snapshot.version}: ${err.message}`,
          err.segmentPath ?? seg.source,
          { cause: err },
        );
      }
    }
    const order = snapshot.probeOrder;
    const seen = new SeenKeys(
      order,
      order.slice(0, -1).reduce((n, seg) => n + seg.header.recordCount, 0),
    );
    const seed = order[0]?.header.hashSeed ?? 0;
    const hash = { lo: 0, hi: 0 };
    const { mapping, layout } = snapshot;
    const migrate = mapping.identical
      ? null
      : (row: Buffer): FeatureValue[] => {
          const values = decodeRow(layout, row);
          return mapping.sources.map((from) => (from < 0 ? null : values[from]!));
        };
    const written: WrittenSegment[] = [];
    let expired = 0;
    let part = this.newSegment("base", null);
    try {
      for (let si = 0; si < order.length; si++) {
        const seg = order[si]!;
        const b = seg.bytes;
        const h = seg.header;
        const last = si === order.length - 1; // nothing older to shadow: no need to remember its keys
        const slots = new Uint32Array(b.buffer, b.byteOffset + h.indexOffset, h.slotCount * 4);
        for (let w = 0; w < slots.length; w += 4) {
          const length = slots[w + 3]!;
          if (length === 0) continue;
          const offset = slots[w + 2]!;
          const keyStart = offset + RECORD_HEADER_BYTES;
          const keyEnd = keyStart + (b[offset + 6]! | (b[offset + 7]! << 8));
          let lo = slots[w]!;
          let hi = slots[w + 1]!;
          if (h.hashSeed !== seed) {
            hashKeyRange(b, keyStart, keyEnd, seed, hash);
            lo = hash.lo >>> 0;
            hi = hash.hi >>> 0;
          }
          if (seen.check(lo, hi, si, keyStart, keyEnd, !last)) continue; // shadowed by a newer write
          if (seg.isTombstone(offset)) continue;
          // Its newest write (older ones were shadowed above) is past the age served.
          if (seg.eventTimeMs(offset) < expireBeforeMs) {
            expired++;
            continue;
          }
          if (part.estimatedBytes > maxBytes) {
            written.push(part.finish());
            part = this.newSegment("base", null);
          }
          // The row's bytes as they are (the body CRC above vouches for them), or its values
          // moved into the config's layout.
          const valueAt = seg.valueOffset(offset);
          const row = b.subarray(valueAt, valueAt + seg.valueLength(offset));
          part.add(b.subarray(keyStart, keyEnd), seg.eventTimeMs(offset), migrate ? migrate(row) : row);
        }
      }
      written.push(part.finish());
    } catch (err) {
      part.abort();
      throw err;
    }
    return { written, expired };
  }

  private publish(
    reason: VersionReason,
    segments: SegmentEntry[],
    fresh: SegmentEntry[],
    kafka: KafkaPosition | null,
    expectParent: number | null | undefined,
    writerEpoch = 0,
  ): Manifest {
    // Check what was just written against the disk before anything points at it (the parent's
    // segments were checked when they were published): publishing a delta costs O(delta).
    for (const s of segments.filter((e) => fresh.includes(e))) {
      checkSegmentFile(this.store.segmentPath(s.uuid), s, this.schemaHash);
    }
    return this.store.publish(
      {
        reason,
        schema_hash: this.schemaHash,
        schema: {
          key: this.schema.key,
          features: this.schema.features.map((f) => ({ name: f.name, type: f.type })),
        },
        segments,
        kafka,
        writer_epoch: writerEpoch,
      },
      expectParent === undefined ? {} : { expectParent },
    );
  }

  private currentManifest(): Manifest | null {
    const v = this.store.currentVersion();
    return v === null ? null : this.store.readManifest(v).manifest;
  }

  private newSegment(kind: SegmentKind, baseUuid: string | null): SegmentFileWriter {
    return new SegmentFileWriter(this.store.dataDir, {
      kind,
      tableName: this.schema.name,
      schemaHash: this.schemaHash,
      layout: this.layout,
      baseUuid,
    });
  }
}

/**
 * The keys compaction has met, by their 64-bit index fingerprint (open addressing), each with
 * where its bytes are, so that two keys of one fingerprint are still told apart.
 */
class SeenKeys {
  private readonly mask: number;
  /** Per slot: fingerprint lo, hi, segment (its position in `segments`, plus one; 0 = empty), key start. */
  private readonly slots: Uint32Array;

  constructor(
    private readonly segments: readonly { readonly bytes: Buffer }[],
    capacity: number,
  ) {
    let size = 16;
    while (size < capacity * 2) size *= 2;
    this.mask = size - 1;
    this.slots = new Uint32Array(size * 4);
  }

  /**
   * True when the key at [start, end) of segment `segment`'s bytes was seen before; else
   * remembers it (with `remember`) and returns false.
   */
  check(lo: number, hi: number, segment: number, start: number, end: number, remember: boolean): boolean {
    const slots = this.slots;
    const bytes = this.segments[segment]!.bytes;
    const length = end - start;
    for (let s = lo & this.mask; ; s = (s + 1) & this.mask) {
      const at = s * 4;
      const ref = slots[at + 2]!;
      if (ref === 0) {
        if (remember) {
          slots[at] = lo;
          slots[at + 1] = hi;
          slots[at + 2] = segment + 1;
          slots[at + 3] = start;
        }
        return false;
      }
      if (slots[at] !== lo || slots[at + 1] !== hi) continue;
      const other = this.segments[ref - 1]!.bytes;
      const from = slots[at + 3]!;
      // The key length is the u16 just before the record's 24-byte header ends (keyLen at +6).
      const otherLength =
        other[from - RECORD_HEADER_BYTES + 6]! | (other[from - RECORD_HEADER_BYTES + 7]! << 8);
      if (otherLength === length && bytes.compare(other, from, from + length, start, end) === 0) return true;
    }
  }
}
