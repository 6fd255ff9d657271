/**
 * What changed between two versions of a table: rows added, removed, and changed in value, with
 * some of their keys. Each version is scanned once (storage/version-scan.ts: every record CRC
 * checked) and its keys looked up in the other with the native batch lookup. Values are compared
 * as the bytes of the row when both versions share a schema, else feature by feature through the
 * table config's features (a feature added since reads null in both), so that a rewrite in a new
 * schema (`compact` after a config change) changes nothing. Event times are not values: a row
 * imported again with the same values is unchanged.
 */
import { BatchLocations, BatchStatus } from "./native.js";
import { VersionScanner } from "./version-scan.js";
import { newRowLocation, type RowLocation, type VersionSnapshot } from "./version-snapshot.js";
import type { FeatureValue } from "../format/schema.js";

export interface VersionDiff {
  from: number;
  to: number;
  added: number;
  removed: number;
  changed: number;
  unchanged: number;
  /**
   * Rows left out because a record failed its CRC check, in either version: a damaged record is
   * met once from each side when its key is in both versions, so it counts twice then.
   */
  damaged: number;
  /** Up to `sampleKeys` keys of each kind, in scan order. */
  samples: { added: string[]; removed: string[]; changed: string[] };
}

const CHUNK_ROWS = 4096;

export function diffVersions(from: VersionSnapshot, to: VersionSnapshot, sampleKeys = 5): VersionDiff {
  const diff: VersionDiff = {
    from: from.version,
    to: to.version,
    added: 0,
    removed: 0,
    changed: 0,
    unchanged: 0,
    damaged: 0,
    samples: { added: [], removed: [], changed: [] },
  };
  const sample = (kind: "added" | "removed" | "changed", key: () => string): void => {
    if (diff.samples[kind].length < sampleKeys) diff.samples[kind].push(key());
  };
  const sameValues = valueComparer(from, to);
  // The rows of `to`, found in `from` or not.
  walk(
    to,
    from,
    (key, here, there) => {
      if (there === null) {
        diff.added++;
        sample("added", key);
      } else if (sameValues(there, here)) diff.unchanged++;
      else {
        diff.changed++;
        sample("changed", key);
      }
    },
    diff,
  );
  // The rows of `from` that `to` lacks.
  walk(
    from,
    to,
    (key, _here, there) => {
      if (there !== null) return;
      diff.removed++;
      sample("removed", key);
    },
    diff,
  );
  return diff;
}

/**
 * Calls `visit` for every live row of `scanned` with its location there and in `other` (null when
 * absent there). Damaged records, in either version, are counted and skipped.
 */
function walk(
  scanned: VersionSnapshot,
  other: VersionSnapshot,
  visit: (key: () => string, here: RowLocation, there: RowLocation | null) => void,
  diff: VersionDiff,
): void {
  const scanner = new VersionScanner(scanned);
  const inOther = new BatchLocations();
  const here = newRowLocation();
  const there = newRowLocation();
  for (let n = scanner.nextChunk(CHUNK_ROWS); n > 0; n = scanner.nextChunk(CHUNK_ROWS)) {
    const { keys, located } = scanner;
    other.locator.locate(keys, inOther);
    for (let i = 0; i < n; i++) {
      const status = inOther.status(i);
      if (located.status(i) !== BatchStatus.FOUND || status === BatchStatus.CORRUPT) {
        diff.damaged++;
        continue;
      }
      scanned.locationOf(located, i, here);
      if (status === BatchStatus.FOUND) other.locationOf(inOther, i, there);
      const key = () => keys.bytes.toString("utf8", keys.bounds[2 * i], keys.bounds[2 * i + 1]);
      visit(key, here, status === BatchStatus.FOUND ? there : null);
    }
  }
}

/** Whether a row of `from` (first) and one of `to` hold the same values. */
function valueComparer(
  from: VersionSnapshot,
  to: VersionSnapshot,
): (a: RowLocation, b: RowLocation) => boolean {
  if (from.manifest.schema_hash === to.manifest.schema_hash) {
    return (a, b) =>
      a.valueLength === b.valueLength &&
      a.segment!.bytes.compare(
        b.segment!.bytes,
        b.valueOffset,
        b.valueOffset + b.valueLength,
        a.valueOffset,
        a.valueOffset + a.valueLength,
      ) === 0;
  }
  // Both read through the table config's features, by name.
  const features = to.features.length;
  return (a, b) => {
    for (let f = 0; f < features; f++) if (!sameValue(from.readAs(a, f), to.readAs(b, f))) return false;
    return true;
  };
}

/** Equal as stored: the same bytes for bytes and vectors, the same bits for numbers (NaN is NaN, 0 is not -0). */
function sameValue(a: FeatureValue, b: FeatureValue): boolean {
  if (ArrayBuffer.isView(a) || ArrayBuffer.isView(b)) {
    if (!ArrayBuffer.isView(a) || !ArrayBuffer.isView(b) || a.byteLength !== b.byteLength) return false;
    return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
      Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    );
  }
  return Object.is(a, b);
}
