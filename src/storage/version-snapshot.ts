/**
 * An open version: its manifest and its mapped segments. Every row a snapshot returns comes from
 * this one version, so a request holds one snapshot from start to end while swaps go on.
 *
 * Lookups probe the newest segment first; the first record found wins, and a tombstone means the
 * key is absent. Every record read is checked against its CRC: a mismatch is reported as
 * `corrupt` for that key, never as bytes.
 */
import { CORRUPT, LookupKey, NOT_FOUND, type SegmentView } from "../format/segment-view.js";
import { decodeRow, readFeature, rowLayout, type RowLayout } from "../format/row-layout.js";
import {
  describeSchemaChange,
  mapSchema,
  type FeatureSpec,
  type FeatureValue,
  type SchemaMapping,
  type TableSchema,
} from "../format/schema.js";
import { SegmentCorruptError } from "../format/errors.js";
import { SchemaMismatchError } from "./errors.js";
import type { MappedSegmentCache } from "./mapped-segment.js";
import type { TableStore, LoadedManifest } from "./table-store.js";
import type { Manifest } from "./manifest.js";
import { DEFAULT_HASH_SEED } from "../format/segment-encoder.js";
import type { KeyBatch } from "../format/key-batch.js";
import { BatchLocator, BatchStatus, type BatchLocations } from "./native.js";

export type LookupStatus = "found" | "absent" | "corrupt";

/** Where a found row lies; reused across lookups by hot loops. Valid while the snapshot is. */
export interface RowLocation {
  status: LookupStatus;
  segment: SegmentView | null;
  /** Absolute offsets in `segment.bytes`. */
  valueOffset: number;
  valueLength: number;
  eventTimeMs: number;
}

export const newRowLocation = (): RowLocation => ({
  status: "absent",
  segment: null,
  valueOffset: 0,
  valueLength: 0,
  eventTimeMs: 0,
});

export class VersionSnapshot {
  /** The layout of this version's rows (its own schema's). */
  readonly layout: RowLayout;
  /** Newest first: the probe order. */
  readonly probeOrder: readonly SegmentView[];
  /** The features a reader sees: the config's when opened with one, else the version's own. */
  readonly features: readonly FeatureSpec[];
  /** How `features` map onto this version's (openSnapshot checked that none changed type). */
  readonly mapping: SchemaMapping;
  private preparedLocator: BatchLocator | null = null;

  constructor(
    readonly table: string,
    readonly manifest: Manifest,
    readonly manifestSha256: string,
    /** In manifest order: base part(s), then deltas oldest to newest. */
    readonly segments: readonly SegmentView[],
    reader: Pick<TableSchema, "features"> = manifest.schema,
    mapping = mapSchema(reader, manifest.schema),
  ) {
    this.layout = rowLayout(manifest.schema);
    this.probeOrder = [...segments].reverse();
    this.features = reader.features;
    this.mapping = mapping;
  }

  /**
   * Throws unless this version's schema is the reader's: what a writer needs that merges rows
   * onto it (ingest), or a client that decodes rows by the config's layout (PACKED). `forWhat`
   * completes "…: <forWhat>".
   */
  requireReaderSchema(forWhat: string): void {
    const change = describeSchemaChange(this.mapping);
    if (change === null) return;
    throw new SchemaMismatchError(
      this.table,
      this.version,
      `was written with another schema than the config's (${change}): ${forWhat}; "strata compact ${this.table}" rewrites it in the config's schema`,
    );
  }

  get version(): number {
    return this.manifest.version;
  }

  /** Finds `key`, filling `out`. Pass a LookupKey in hot loops: it is reused, not allocated. */
  locate(key: string | LookupKey, out: RowLocation = newRowLocation()): RowLocation {
    const k = typeof key === "string" ? new LookupKey(key, DEFAULT_HASH_SEED) : key;
    const order = this.probeOrder;
    for (let s = 0; s < order.length; s++) {
      const seg = order[s]!;
      const offset = seg.find(k);
      if (offset === NOT_FOUND) continue;
      out.segment = seg;
      if (offset === CORRUPT) {
        out.status = "corrupt";
        return out;
      }
      if (seg.isTombstone(offset)) break;
      out.status = "found";
      out.valueOffset = seg.valueOffset(offset);
      out.valueLength = seg.valueLength(offset);
      out.eventTimeMs = seg.eventTimeMs(offset);
      return out;
    }
    out.status = "absent";
    out.segment = null;
    return out;
  }

  /**
   * Looks up a whole batch in one native call (the server's read path): the same answers as
   * `locate` per key. `out.segment(i)` indexes `probeOrder`.
   */
  locateBatch(keys: KeyBatch, out: BatchLocations): void {
    this.locator.locate(keys, out);
  }

  /** `locate` for one key through the native lookup: the same answers, faster. */
  locateOne(key: string, out: RowLocation = newRowLocation()): RowLocation {
    this.locator.locateOne(key);
    return this.locationOf(this.locator.one, 0, out);
  }

  /** Row `i` of a batch lookup's (or a scan's) results in this version, as a RowLocation. */
  locationOf(located: BatchLocations, i: number, out: RowLocation = newRowLocation()): RowLocation {
    const status = located.status(i);
    out.status =
      status === BatchStatus.FOUND ? "found" : status === BatchStatus.ABSENT ? "absent" : "corrupt";
    out.segment = status === BatchStatus.ABSENT ? null : this.probeOrder[located.segment(i)]!;
    out.valueOffset = located.valueOffset(i);
    out.valueLength = located.valueLength(i);
    out.eventTimeMs = located.eventTimeMs(i);
    return out;
  }

  /** The native side of this version's lookups (prepared on first use). */
  get locator(): BatchLocator {
    return (this.preparedLocator ??= new BatchLocator(this.probeOrder));
  }

  /** Looks a key up and decodes its values (copies). */
  get(key: string): { status: LookupStatus; eventTimeMs: number; values: FeatureValue[] | null } {
    const loc = this.locateOne(key);
    if (loc.status !== "found") return { status: loc.status, eventTimeMs: 0, values: null };
    return { status: "found", eventTimeMs: loc.eventTimeMs, values: this.decode(loc) };
  }

  decode(loc: RowLocation): FeatureValue[] {
    return decodeRow(this.layout, loc.segment!.bytes, loc.valueOffset, loc.valueLength);
  }

  /** Reader feature `index` (of `features`) of a found row: null when this version lacks it. */
  readAs(loc: RowLocation, index: number): FeatureValue {
    const source = this.mapping.sources[index]!;
    return source < 0 ? null : this.readFeature(loc, source);
  }

  /** This version's feature `index` (of its own schema) of a found row. */
  readFeature(loc: RowLocation, index: number): FeatureValue {
    return readFeature(
      this.layout,
      this.layout.slots[index]!,
      loc.segment!.bytes,
      loc.valueOffset,
      loc.valueLength,
    );
  }

  /**
   * Every live row of the version once, newest write of each key, in no particular order.
   * A record that fails its CRC is yielded with status `corrupt`.
   */
  *scan(): Generator<{ key: string; location: RowLocation }> {
    for (let i = 0; i < this.probeOrder.length; i++) {
      const seg = this.probeOrder[i]!;
      const newer = this.probeOrder.slice(0, i);
      const offsets: number[] = [];
      const lengths: number[] = [];
      seg.forEachRecord((o, l) => {
        offsets.push(o);
        lengths.push(l);
      });
      for (let r = 0; r < offsets.length; r++) {
        const offset = offsets[r]!;
        const location = newRowLocation();
        location.segment = seg;
        if (!seg.recordIsIntact(offset, lengths[r]!)) {
          location.status = "corrupt";
          yield { key: "", location };
          continue;
        }
        const key = seg.keyOf(offset);
        const k = new LookupKey(key, DEFAULT_HASH_SEED);
        if (newer.some((n) => n.find(k) !== NOT_FOUND)) continue; // shadowed by a newer write
        if (seg.isTombstone(offset)) continue;
        location.status = "found";
        location.valueOffset = seg.valueOffset(offset);
        location.valueLength = seg.valueLength(offset);
        location.eventTimeMs = seg.eventTimeMs(offset);
        yield { key, location };
      }
    }
  }
}

/**
 * Opens a version of a table: reads its manifest and maps its segments (shared through `cache`).
 * With `verify`, checks every segment byte against the manifest's checksums (done before a version
 * is published and before a server swaps to it). With `schema` (the config's), the version is read
 * through it (VersionSnapshot.features): a feature that changed type refuses it. Throws
 * SegmentCorruptError, ManifestCorruptError or SchemaMismatchError.
 */
export function openSnapshot(
  store: TableStore,
  cache: MappedSegmentCache,
  version: number,
  options: { verify: boolean; schema?: TableSchema },
): VersionSnapshot {
  const loaded: LoadedManifest = store.readManifest(version);
  const { manifest } = loaded;
  const reader = options.schema ?? manifest.schema;
  const mapping = requireReadable(
    store.table,
    manifest,
    reader,
    "it cannot be read with this config; restore the type, or import the table again",
  );
  const segments = manifest.segments.map((entry) => {
    const path = store.segmentPath(entry.uuid);
    const view = cache.open(entry.uuid, path, options.verify);
    const h = view.header;
    const mismatch =
      h.fileLength !== entry.size
        ? `size ${h.fileLength}, manifest says ${entry.size}`
        : view.bodyCrc !== entry.body_crc32
          ? "body CRC differs from the manifest"
          : view.bytes.readUInt32LE(4092) !== entry.header_crc32
            ? "header CRC differs from the manifest"
            : h.schemaHash !== manifest.schema_hash
              ? `schema ${h.schemaHash}, manifest says ${manifest.schema_hash}`
              : null;
    if (mismatch) {
      cache.evict(entry.uuid);
      throw new SegmentCorruptError(
        `Segment does not match version ${version}: ${mismatch}: "${path}"`,
        path,
      );
    }
    return view;
  });
  return new VersionSnapshot(store.table, manifest, loaded.sha256, segments, reader, mapping);
}

/**
 * How `manifest`'s rows are read through `reader` (the config's schema), or SchemaMismatchError
 * when a feature changed type, ending in `consequence`: no reader can read those bytes.
 */
export function requireReadable(
  table: string,
  manifest: Manifest,
  reader: Pick<TableSchema, "features">,
  consequence: string,
): SchemaMapping {
  const mapping = mapSchema(reader, manifest.schema);
  if (mapping.retyped.length === 0) return mapping;
  throw new SchemaMismatchError(
    table,
    manifest.version,
    `holds features of another type than the config's (${mapping.retyped.join(", ")}): ${consequence}`,
  );
}

/**
 * openSnapshot with every segment it has not verified before checked byte for byte on libuv's
 * thread pool: how a server opens a version to swap to, while it goes on serving the old one.
 */
export async function openVerifiedSnapshot(
  store: TableStore,
  cache: MappedSegmentCache,
  version: number,
  options: { schema?: TableSchema },
): Promise<VersionSnapshot> {
  const snapshot = openSnapshot(store, cache, version, { verify: false, ...options });
  await Promise.all(snapshot.manifest.segments.map((e, i) => cache.verify(e.uuid, snapshot.segments[i]!)));
  return snapshot;
}
