/**
 * ScanTable's resume token: where a scan of one table, version and shard stands after a chunk
 * (storage/version-scan.ts). Opaque to clients; any server that retains the version resumes it.
 *
 *   token := "SCN1" | u32 crc32(table name) | u32 version lo | u32 version hi | u32 shard index
 *            | u32 shard count | u32 segment | u32 offset | u32 crc32(all before)      (36 bytes, LE)
 *
 * The CRC makes a token that was cut, altered or made up fail as INVALID_ARGUMENT instead of
 * silently scanning from somewhere else; the table's CRC catches a token sent for another table.
 */
import { crc32Range } from "../format/crc32.js";
import type { ScanPosition, ScanShard } from "../storage/version-scan.js";
import { RequestError } from "./errors.js";

const MAGIC = 0x314e4353; // "SCN1" little-endian
const TOKEN_BYTES = 36;

export interface ScanToken {
  version: number;
  shard: ScanShard;
  position: ScanPosition;
}

const tableCrc = (table: string): number => {
  const name = Buffer.from(table, "utf8");
  return crc32Range(name, 0, name.length);
};

export function encodeScanToken(table: string, token: ScanToken): Buffer {
  const b = Buffer.alloc(TOKEN_BYTES);
  b.writeUInt32LE(MAGIC, 0);
  b.writeUInt32LE(tableCrc(table), 4);
  b.writeUInt32LE(token.version % 2 ** 32, 8);
  b.writeUInt32LE(Math.floor(token.version / 2 ** 32), 12);
  b.writeUInt32LE(token.shard.index, 16);
  b.writeUInt32LE(token.shard.count, 20);
  b.writeUInt32LE(token.position.segment, 24);
  b.writeUInt32LE(token.position.offset, 28);
  b.writeUInt32LE(crc32Range(b, 0, 32), 32);
  return b;
}

/** Reads a token a client sent back for `table`; throws RequestError when it is not one. */
export function decodeScanToken(table: string, b: Uint8Array): ScanToken {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (
    buf.length !== TOKEN_BYTES ||
    buf.readUInt32LE(0) !== MAGIC ||
    buf.readUInt32LE(32) !== crc32Range(buf, 0, 32)
  )
    throw new RequestError("resume_token is not a token a ScanTable response gave");
  if (buf.readUInt32LE(4) !== tableCrc(table))
    throw new RequestError(`resume_token belongs to a scan of another table than "${table}"`);
  return {
    version: buf.readUInt32LE(12) * 2 ** 32 + buf.readUInt32LE(8),
    shard: { index: buf.readUInt32LE(16), count: buf.readUInt32LE(20) },
    position: { segment: buf.readUInt32LE(24), offset: buf.readUInt32LE(28) },
  };
}
