/**
 * Checks a segment file on disk, byte for byte, with plain reads instead of a mapping: for
 * `verify`, for a writer checking what it just wrote, and for a server re-checking a version it
 * suspects. Nothing stays mapped afterwards, so checking a large base costs no memory after it.
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { SegmentCorruptError } from "../format/errors.js";
import { HEADER_BYTES, TRAILER_BYTES, decodeHeader, decodeTrailer, hex32 } from "../format/segment-layout.js";
import type { SegmentEntry } from "./manifest.js";
import { errorMessage } from "../shared/errors.js";
import { crc32 } from "./native.js";

const READ_BYTES = 4 << 20;

/** Checks header, trailer and body CRC, and (given the manifest entry) size, uuid and checksums. */
export function checkSegmentFile(path: string, entry?: SegmentEntry, schemaHash?: string): void {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (err) {
    throw new SegmentCorruptError(`Cannot open segment "${path}": ${errorMessage(err)}`, path, {
      cause: err,
    });
  }
  const fail = (detail: string): never => {
    throw new SegmentCorruptError(`Segment is corrupt: ${detail}: "${path}"`, path);
  };
  try {
    const size = fstatSync(fd).size;
    if (entry && size !== entry.size) fail(`size ${size}, manifest says ${entry.size}`);
    const head = Buffer.alloc(HEADER_BYTES);
    readSync(fd, head, 0, HEADER_BYTES, 0);
    let header;
    let bodyCrc;
    try {
      header = decodeHeader(head, size);
      const trailer = Buffer.alloc(TRAILER_BYTES);
      readSync(fd, trailer, 0, TRAILER_BYTES, size - TRAILER_BYTES);
      bodyCrc = decodeTrailer(trailer, header);
    } catch (err) {
      if (err instanceof SegmentCorruptError) fail(err.message.replace(/^Segment is corrupt: /, ""));
      throw err;
    }
    if (entry) {
      if (header.segmentUuid !== entry.uuid)
        fail(`it holds uuid ${header.segmentUuid}, manifest says ${entry.uuid}`);
      if (head.readUInt32LE(HEADER_BYTES - 4) !== entry.header_crc32)
        fail("header CRC differs from the manifest");
      if (bodyCrc !== entry.body_crc32) fail("body CRC differs from the manifest");
    }
    if (schemaHash !== undefined && header.schemaHash !== schemaHash)
      fail(`schema ${header.schemaHash}, manifest says ${schemaHash}`);
    const buf = Buffer.allocUnsafe(READ_BYTES);
    let crc = 0;
    for (let at = HEADER_BYTES; at < size - TRAILER_BYTES;) {
      const n = readSync(fd, buf, 0, Math.min(READ_BYTES, size - TRAILER_BYTES - at), at);
      if (n === 0) fail("short read");
      crc = crc32(buf.subarray(0, n), crc);
      at += n;
    }
    if (crc !== bodyCrc) fail(`body CRC mismatch (expected ${hex32(bodyCrc)}, found ${hex32(crc)})`);
  } finally {
    closeSync(fd);
  }
}
