/**
 * Writes one segment file durably: records stream to a temp file under data/, then the index,
 * trailer and finally the header page; fsync; rename to data/<uuid>.seg; fsync data/.
 */
import { closeSync, fsyncSync, openSync, readSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { SegmentEncoder, type SegmentEncoderOptions, type SegmentSink } from "../format/segment-encoder.js";
import { HEADER_BYTES, type SegmentHeader } from "../format/segment-layout.js";
import type { FeatureValue } from "../format/schema.js";
import { fsyncDir, tempPathFor } from "./durable-fs.js";

export interface WrittenSegment {
  readonly uuid: string;
  readonly path: string;
  readonly header: SegmentHeader;
  readonly size: number;
  readonly headerCrc: number;
  readonly bodyCrc: number;
}

class FileSegmentSink implements SegmentSink {
  private position = HEADER_BYTES;

  constructor(private readonly fd: number) {}

  append(chunk: Uint8Array): void {
    writeFully(this.fd, chunk, this.position);
    this.position += chunk.length;
  }

  readAt(offset: number, length: number): Buffer {
    const out = Buffer.alloc(length);
    readSync(this.fd, out, 0, length, offset);
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
    this.encoder = new SegmentEncoder(new FileSegmentSink(this.fd), options);
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

  add(key: string | Buffer, eventTimeMs: number, values: readonly FeatureValue[] | null): void {
    this.encoder.add(key, eventTimeMs, values);
  }

  /** Finishes, syncs and renames the file into place. */
  finish(): WrittenSegment {
    try {
      const end = this.encoder.finish();
      writeFully(this.fd, end.tail, end.tailOffset);
      writeFully(this.fd, end.headerBytes, 0);
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
      throw err;
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

function writeFully(fd: number, bytes: Uint8Array, position: number): void {
  let at = 0;
  while (at < bytes.length) at += writeSync(fd, bytes, at, bytes.length - at, position + at);
}
