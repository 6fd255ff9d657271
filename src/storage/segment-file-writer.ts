/**
 * Writes one segment file durably: records stream to a temp file under data/, then the index,
 * trailer and finally the header page; fsync; rename to data/<uuid>.seg; fsync data/.
 */
import { closeSync, fsyncSync, openSync, readSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import {
  SegmentEncoder,
  type RecordBatch,
  type RecordTarget,
  type RowContent,
  type SegmentEncoderOptions,
  type SegmentSink,
} from "../format/segment-encoder.js";
import { HEADER_BYTES, type SegmentHeader } from "../format/segment-layout.js";
import { fsyncDir, tempPathFor } from "./durable-fs.js";
import { checkSegmentFile } from "./segment-check.js";
import { encoderNative } from "./native.js";
import { withPath } from "../shared/errors.js";
import type { SegmentEntry } from "./manifest.js";

export interface WrittenSegment {
  readonly uuid: string;
  readonly path: string;
  readonly header: SegmentHeader;
  readonly size: number;
  readonly headerCrc: number;
  readonly bodyCrc: number;
}

/**
 * Appends records in file order. The writes are the encoder's 1 MiB chunks, as they come: writing
 * aligned 2 MiB pieces instead (for huge-page mappings) was measured and undone (decision 20).
 */
class FileSegmentSink implements SegmentSink {
  private position = HEADER_BYTES;

  constructor(
    private readonly fd: number,
    private readonly path: string,
  ) {}

  append(chunk: Uint8Array): void {
    writeFully(this.fd, chunk, this.position, this.path);
    this.position += chunk.length;
  }

  readAt(offset: number, length: number): Buffer {
    const out = Buffer.alloc(length);
    try {
      readSync(this.fd, out, 0, length, offset);
    } catch (err) {
      throw withPath(err, this.path);
    }
    return out;
  }
}

export class SegmentFileWriter {
  readonly tempPath: string;
  private readonly fd: number;
  private readonly encoder: SegmentEncoder;

  constructor(
    private readonly dataDir: string,
    options: SegmentEncoderOptions,
  ) {
    this.tempPath = tempPathFor(join(dataDir, "segment.seg"));
    this.fd = openSync(this.tempPath, "wx+", 0o644);
    this.encoder = new SegmentEncoder(new FileSegmentSink(this.fd, this.tempPath), {
      ...options,
      native: encoderNative,
    });
  }

  get uuid(): string {
    return this.encoder.segmentUuid;
  }

  get estimatedBytes(): number {
    return this.encoder.estimatedBytes;
  }

  get recordCount(): number {
    return this.encoder.recordCount;
  }

  add(key: string | Buffer, eventTimeMs: number, values: RowContent | null): void {
    this.encoder.add(key, eventTimeMs, values);
  }

  /** The encoder, for writing records in place (see RecordTarget). */
  get records(): SegmentEncoder {
    return this.encoder;
  }

  /** Finishes, syncs and renames the file into place. */
  finish(): WrittenSegment {
    try {
      const end = this.encoder.finish();
      let at = end.tailOffset;
      for (const part of end.tailParts) {
        writeFully(this.fd, part, at, this.tempPath);
        at += part.length;
      }
      writeFully(this.fd, end.headerBytes, 0, this.tempPath);
      fsyncSync(this.fd);
      closeSync(this.fd);
      const path = join(this.dataDir, `${this.uuid}.seg`);
      renameSync(this.tempPath, path);
      fsyncDir(this.dataDir);
      return {
        uuid: this.uuid,
        path,
        header: end.header,
        size: end.header.fileLength,
        headerCrc: end.headerCrc,
        bodyCrc: end.bodyCrc,
      };
    } catch (err) {
      this.abort();
      throw withPath(err, this.tempPath);
    }
  }

  /** Drops an unfinished file. */
  abort(): void {
    try {
      closeSync(this.fd);
    } catch {
      // already closed
    }
    try {
      unlinkSync(this.tempPath);
    } catch {
      // already gone
    }
  }
}

/** A RecordTarget over base parts: moves to a new part (`next`) before a record once one is full. */
export class PartedRecords implements RecordTarget {
  constructor(
    private part: SegmentEncoder,
    private readonly maxBytes: number,
    private readonly next: () => SegmentEncoder,
  ) {}

  reserve(maxLength: number): number {
    if (this.part.estimatedBytes > this.maxBytes) this.part = this.next();
    return this.part.reserve(maxLength);
  }

  get bytes(): Buffer {
    return this.part.bytes;
  }

  get floats(): Float32Array {
    return this.part.floats;
  }

  get doubles(): Float64Array {
    return this.part.doubles;
  }

  get words(): Int32Array {
    return this.part.words;
  }

  commit(at: number, keyLen: number, valueLen: number, eventTimeMs: number): void {
    this.part.commit(at, keyLen, valueLen, eventTimeMs);
  }

  add(key: string | Buffer, eventTimeMs: number, values: RowContent | null): void {
    if (this.part.estimatedBytes > this.maxBytes) this.part = this.next();
    this.part.add(key, eventTimeMs, values);
  }

  /** The current part's; the native writer stops where `reserve` would move to the next part. */
  openBatch(): RecordBatch {
    return this.part.openBatch(this.maxBytes);
  }

  closeBatch(): void {
    this.part.closeBatch();
  }
}

/** Writes all of `bytes` at `position` of the file `path` open as `fd`. */
function writeFully(fd: number, bytes: Uint8Array, position: number, path: string): void {
  try {
    let at = 0;
    while (at < bytes.length) at += writeSync(fd, bytes, at, bytes.length - at, position + at);
  } catch (err) {
    throw withPath(err, path);
  }
}

/** Where and how a row source may write base parts of its own (see {@link ENCODE_PARTS}). */
export interface PartsSpec {
  readonly dataDir: string;
  readonly encoder: SegmentEncoderOptions;
  /** A part is finished once its estimated size passes this. */
  readonly maxBytes: number;
}

/**
 * Offered by a row source that can write its rows as base parts itself, several at once (an
 * import file split across threads, importer/parallel-import.ts): the parts come back finished,
 * in row order (a later part's rows win over an earlier one's), each already checked against the
 * disk like a publish would. null: not this source; encode it the ordinary way.
 */
export const ENCODE_PARTS: unique symbol = Symbol("strata.encodeParts");
export interface PartsEncodable {
  [ENCODE_PARTS](spec: PartsSpec, onProgress?: (rows: number) => void): Promise<WrittenSegment[] | null>;
}

export function isPartsEncodable(x: unknown): x is PartsEncodable {
  return (
    typeof x === "object" && x !== null && typeof (x as Partial<PartsEncodable>)[ENCODE_PARTS] === "function"
  );
}

/** The manifest entry of a written segment. */
export function segmentEntryOf(w: WrittenSegment): SegmentEntry {
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

/** Checks a just-written segment against the disk, as a publish does before listing it. */
export function checkWrittenSegment(w: WrittenSegment): void {
  checkSegmentFile(w.path, segmentEntryOf(w), w.header.schemaHash);
}
