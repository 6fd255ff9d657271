/**
 * Chunked scans of a version: every live row once. A scan walks the records of each segment in
 * file order, newest segment first, and keeps a record when a lookup of its own key answers with
 * that very record: a newer write, a tombstone, or a later copy in the same segment shadows the
 * rest. The lookups are the server's batch lookup (native, CRC checked, the misses of a batch's
 * index probes overlapped), and the walk reads the mapped file sequentially, so a row costs a
 * copy of its key and a share of one native call, and no string or object.
 *
 * A record's length comes from its own header, checked before it is trusted: a record that fails
 * its CRC is reported (a DATA_LOSS row with an empty key) and the walk goes on at the next record
 * the index names, so damage costs the damaged row and nothing else. The zeros a writer puts
 * before a record to save it a cache line (format 2) are stepped over only where recordPad would
 * have put exactly them, so zeroed damage is not taken for a pad.
 *
 * Where a scan stands is two numbers (a segment of the probe order and a record's offset), the
 * same in any process that has the version, so a client can resume after any chunk
 * (serve/scan-token.ts). The data section of each segment also splits into `count` byte ranges: a
 * record belongs to the range it starts in, so `count` scans of one version ("shards") read every
 * row exactly once between them.
 */
import { KeyBatchAppender } from "../format/key-batch.js";
import { RECORD_HEADER_BYTES } from "../format/segment-layout.js";
import { BatchLocations, BatchStatus } from "./native.js";
import type { VersionSnapshot } from "./version-snapshot.js";

/** The next record to read: at `offset` of segment `segment` of the probe order (newest first). */
export interface ScanPosition {
  segment: number;
  offset: number;
}

/** Part `index` of `count` (0 <= index < count) of every segment's data section. */
export interface ScanShard {
  index: number;
  count: number;
}

export const WHOLE_VERSION: ScanShard = { index: 0, count: 1 };

export class VersionScanner {
  /** The last chunk's rows: their keys (empty for a damaged record) and locations. */
  readonly keys = new KeyBatchAppender();
  /** `located.segment(i)` indexes the snapshot's probe order, as after a batch lookup. */
  readonly located = new BatchLocations();
  /** Where the scan goes on from: after the last chunk. */
  readonly position: ScanPosition;
  private readonly found = new BatchLocations();
  private readonly recordOffsets: number[] = [];
  private readonly recordLengths: number[] = [];

  constructor(
    readonly snapshot: VersionSnapshot,
    readonly shard: ScanShard = WHOLE_VERSION,
    from?: ScanPosition,
  ) {
    if (!(shard.count >= 1 && shard.index >= 0 && shard.index < shard.count))
      throw new RangeError(`Scan shard ${shard.index} of ${shard.count} does not exist`);
    if (from && !VersionScanner.isValidPosition(snapshot, shard, from))
      throw new RangeError(`Scan position ${JSON.stringify(from)} is not in version ${snapshot.version}`);
    this.position = from ? { ...from } : this.startOf(0);
  }

  /** Whether `pos` is a position a scan of this shard of this version can be at. */
  static isValidPosition(snapshot: VersionSnapshot, shard: ScanShard, pos: ScanPosition): boolean {
    const segments = snapshot.probeOrder.length;
    if (!Number.isInteger(pos.segment) || !Number.isInteger(pos.offset)) return false;
    if (pos.segment === segments) return pos.offset === 0;
    if (pos.segment < 0 || pos.segment > segments) return false;
    const [lo, hi] = byteRange(snapshot, shard, pos.segment);
    return pos.offset >= lo && pos.offset <= hi && pos.offset % 8 === 0;
  }

  get done(): boolean {
    return this.position.segment >= this.snapshot.probeOrder.length;
  }

  /** Reads the next rows, up to `maxRows`, into `keys` and `located`; returns how many (0 only when done). */
  nextChunk(maxRows: number): number {
    const { keys, located, found, position, snapshot, recordOffsets, recordLengths } = this;
    keys.clear();
    located.ensure(maxRows);
    let rows = 0;
    const damaged = (segment: number): void => {
      keys.bounds[2 * rows] = keys.bounds[2 * rows + 1] = 0; // a damaged record's key is not trusted
      located.set(rows++, BatchStatus.CORRUPT, segment, 0, 0, 0);
    };
    while (rows < maxRows && !this.done) {
      const segmentIndex = position.segment;
      const seg = snapshot.probeOrder[segmentIndex]!;
      const end = byteRange(snapshot, this.shard, segmentIndex)[1];
      // Candidates: the next records in file order, appended after the rows kept so far.
      const first = keys.count;
      recordOffsets.length = 0;
      recordLengths.length = 0;
      let offset = position.offset;
      let unreadable = -1; // where a header that cannot be a record's stopped the walk
      while (offset < end && keys.count - first < maxRows - rows) {
        let length = seg.recordLengthAt(offset);
        if (length < 0) {
          // The zeros a writer puts before a record to save it a cache line, or damage.
          const after = seg.afterLinePad(offset);
          if (after < 0) {
            unreadable = offset;
            break;
          }
          offset = after;
          if (offset >= end) break; // the record is the next shard's
          length = seg.recordLengthAt(offset);
        }
        const key = offset + RECORD_HEADER_BYTES;
        keys.push(seg.bytes, key, key + seg.keyLength(offset));
        recordOffsets.push(offset);
        recordLengths.push(length);
        offset += length;
      }
      let next = offset;
      const candidates = keys.count - first;
      if (candidates > 0) {
        snapshot.locateBatch(
          { bytes: keys.bytes, bounds: keys.bounds.subarray(2 * first), count: candidates },
          found,
        );
      }
      for (let c = 0; c < candidates; c++) {
        const at = recordOffsets[c]!;
        const status = found.status(c);
        const own = found.segment(c) === segmentIndex;
        if (status === BatchStatus.FOUND && own && found.valueOffset(c) === seg.valueOffset(at)) {
          // The lookup answered with this very record (and checked its CRC): a live row.
          keys.keep(first + c, rows);
          located.set(
            rows++,
            status,
            segmentIndex,
            found.valueOffset(c),
            found.valueLength(c),
            found.eventTimeMs(c),
          );
        } else if ((status === BatchStatus.CORRUPT && own) || !seg.recordIsIntact(at, recordLengths[c]!)) {
          // Damaged: its length is not to be trusted either, so the walk goes on at the next
          // record the index names, and the candidates after it are dropped.
          damaged(segmentIndex);
          next = seg.nextIndexedRecord(at + 1);
          unreadable = -1;
          break;
        }
        // Otherwise shadowed by a newer write or a tombstone, or an older copy the index dropped.
      }
      if (unreadable >= 0) {
        // The zero padding after the last record, or damage: damage if the index names this
        // offset or a record after it.
        const indexed = seg.nextIndexedRecord(unreadable);
        if (indexed >= 0 && indexed < end) damaged(segmentIndex);
        // Past the record the damage is in: the one at `unreadable` or after a line pad there.
        const hit = indexed === unreadable || indexed === seg.linePadEnd(unreadable);
        next = hit ? seg.nextIndexedRecord(indexed + 1) : indexed;
      }
      keys.count = rows;
      if (next >= 0 && next < end) position.offset = next;
      else Object.assign(position, this.startOf(segmentIndex + 1));
    }
    keys.count = rows;
    return rows;
  }

  /** Where this shard's walk of segment `segment` of the probe order starts (the end when none is left). */
  private startOf(segment: number): ScanPosition {
    const { snapshot, shard } = this;
    for (; segment < snapshot.probeOrder.length; segment++) {
      const seg = snapshot.probeOrder[segment]!;
      const [lo, hi] = byteRange(snapshot, shard, segment);
      // The first shard starts at the first record; the others at the first one the index names.
      const start = lo === seg.header.dataOffset ? lo : seg.nextIndexedRecord(lo);
      if (start >= 0 && start < hi) return { segment, offset: start };
    }
    return { segment: snapshot.probeOrder.length, offset: 0 };
  }
}

/** The bytes [lo, hi) of segment `segment`'s data section where `shard`'s records start. */
function byteRange(snapshot: VersionSnapshot, shard: ScanShard, segment: number): [number, number] {
  const { dataOffset, dataLength } = snapshot.probeOrder[segment]!.header;
  return [
    dataOffset + Math.floor((dataLength * shard.index) / shard.count),
    dataOffset + Math.floor((dataLength * (shard.index + 1)) / shard.count),
  ];
}
