/**
 * Makes new versions of one table: a base from imported rows, a delta from ingested changes, a
 * compacted base from a version's segments. Segments are written and checked in full before the
 * manifest that lists them; publishing a delta costs O(delta): the new manifest reuses the
 * parent's segment files.
 */
import {
  ENCODE_PARTS,
  PartedRecords,
  SegmentFileWriter,
  isPartsEncodable,
  type WrittenSegment,
} from "./segment-file-writer.js";
import { MappedSegmentCache } from "./mapped-segment.js";
import { openSnapshot, type VersionSnapshot } from "./version-snapshot.js";
import type { TableStore } from "./table-store.js";
import type { KafkaPosition, Manifest, SegmentEntry, VersionReason } from "./manifest.js";
import { rowLayout, type RowLayout } from "../format/row-layout.js";
import { schemaHash, type FeatureValue, type TableSchema } from "../format/schema.js";
import type { SegmentKind } from "../format/segment-layout.js";
import { SegmentCorruptError } from "../format/errors.js";
import { checkSegmentFile } from "./segment-check.js";
import { ENCODE_INTO, isEncodableRows, type SegmentEncoder } from "../format/segment-encoder.js";

/** A row to write, or with `values` null a delete. `values` are full rows in schema order. */
export interface RowChange {
  key: string;
  eventTimeMs: number;
  values: FeatureValue[] | null;
}

/** Splits a base well under mmap-io's 2 GiB limit. */
export const DEFAULT_MAX_SEGMENT_BYTES = 1 << 30;

export interface ImportOptions {
  maxSegmentBytes?: number;
  /** Called after each batch with the rows written so far. */
  onProgress?: (rows: number) => void;
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
        const parent = this.currentManifest();
        const entries = parts.map(toEntry);
        // Each part was checked against its entry by the thread that wrote it.
        return this.publish("import", entries, [], parent?.kafka ?? null, undefined);
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
        const parent = this.currentManifest();
        const entries = written.map(toEntry);
        return this.publish("import", entries, entries, parent?.kafka ?? null, undefined);
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
    const parent = this.currentManifest();
    const entries = written.map(toEntry);
    return this.publish("import", entries, entries, parent?.kafka ?? null, undefined);
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
    const entry = toEntry(segment.finish());
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
   * tombstones and shadowed rows, and publishes it with the same Kafka offsets.
   */
  compact(options: ImportOptions = {}): Manifest {
    const current = this.store.requireCurrentVersion();
    // Not verified up front: the rewrite reads every record through its CRC and refuses on damage.
    const snapshot = openSnapshot(this.store, new MappedSegmentCache(), current, {
      verify: false,
      schema: this.schema,
    });
    const entries = this.rewrite(snapshot, options.maxSegmentBytes ?? DEFAULT_MAX_SEGMENT_BYTES).map(toEntry);
    return this.publish(
      "compact",
      entries,
      entries,
      snapshot.manifest.kafka,
      current,
      snapshot.manifest.writer_epoch,
    );
  }

  private rewrite(snapshot: VersionSnapshot, maxBytes: number): WrittenSegment[] {
    const written: WrittenSegment[] = [];
    let part = this.newSegment("base", null);
    try {
      for (const { key, location } of snapshot.scan()) {
        if (location.status !== "found") {
          const path = location.segment?.source;
          throw new SegmentCorruptError(
            `Cannot compact version ${snapshot.version}: a record failed its CRC check: "${path}"`,
            path,
          );
        }
        if (part.estimatedBytes > maxBytes) {
          written.push(part.finish());
          part = this.newSegment("base", null);
        }
        part.add(key, location.eventTimeMs, snapshot.decode(location));
      }
      written.push(part.finish());
    } catch (err) {
      part.abort();
      throw err;
    }
    return written;
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

function toEntry(w: WrittenSegment): SegmentEntry {
  return {
    uuid: w.uuid,
    kind: w.header.kind,
    size: w.size,
    header_crc32: w.headerCrc,
    body_crc32: w.bodyCrc,
    records: w.header.recordCount,
    tombstones: w.header.tombstoneCount,
    min_event_time_ms: w.header.minEventTimeMs,
    max_event_time_ms: w.header.maxEventTimeMs,
  };
}
