/**
 * The bytes of a CSV or JSONL import: a file, or standard input for `-`; gzip-compressed input
 * (known by its first two bytes, whatever its name) is decompressed on the way. A plain file is
 * handed on as the ReadStream it is, so that a large CSV file can still be split between two
 * threads (parallel-import.ts); compressed input and standard input are read by one.
 */
import { closeSync, createReadStream, openSync, readSync } from "node:fs";
import { createGunzip } from "node:zlib";
import { Readable } from "node:stream";
import { ImportFileError } from "./errors.js";
import { errorMessage } from "../shared/errors.js";

const GZIP_MAGIC = [0x1f, 0x8b];

export interface ImportInput {
  readonly stream: AsyncIterable<Buffer>;
  /** Input bytes consumed so far (compressed bytes for compressed input), for a progress bar. */
  bytesRead(): number;
}

/** The input behind `path` (`-`: standard input). */
export function openImportInput(path: string): ImportInput {
  if (path === "-") return sniffed(process.stdin);
  const file = createReadStream(path, { highWaterMark: 1 << 20 });
  const bytesRead = () => file.bytesRead;
  return startsWithGzipMagic(path)
    ? { stream: gunzipped(file, path), bytesRead }
    : { stream: file, bytesRead };
}

/** Whether the file's first bytes are gzip's. */
function startsWithGzipMagic(path: string): boolean {
  const fd = openSync(path, "r");
  try {
    const head = Buffer.alloc(2);
    return readSync(fd, head, 0, 2, 0) === 2 && head[0] === GZIP_MAGIC[0] && head[1] === GZIP_MAGIC[1];
  } finally {
    closeSync(fd);
  }
}

/** The decompressed bytes; damaged or cut-off gzip is bad input, named (exit 7), not a crash. */
async function* gunzipped(input: AsyncIterable<Buffer>, name: string): AsyncGenerator<Buffer> {
  try {
    yield* Readable.from(input).pipe(createGunzip()) as AsyncIterable<Buffer>;
  } catch (err) {
    if (!/^Z_/.test(String((err as NodeJS.ErrnoException).code))) throw err;
    throw new ImportFileError(`Cannot decompress ${name}: ${errorMessage(err)} (damaged or cut-off gzip)`, {
      cause: err,
    });
  }
}

/** A stream that cannot be peeked at before reading: decompressed if its first bytes say so. */
function sniffed(input: Readable): ImportInput {
  let read = 0;
  const counted = (async function* () {
    for await (const chunk of input as AsyncIterable<Buffer>) {
      read += chunk.length;
      yield chunk;
    }
  })();
  const stream = (async function* () {
    // The first two bytes decide, however the input was cut into chunks.
    let head = Buffer.alloc(0);
    while (head.length < 2) {
      const next = await counted.next();
      if (next.done) break;
      head = Buffer.concat([head, next.value]);
    }
    if (head.length === 0) return;
    const all = (async function* () {
      yield head;
      yield* counted;
    })();
    const gzip = head[0] === GZIP_MAGIC[0] && head[1] === GZIP_MAGIC[1];
    yield* gzip ? gunzipped(all, "standard input") : all;
  })();
  return { stream, bytesRead: () => read };
}
