/**
 * A large CSV file imported by two threads at once: the file is cut at a line end near its
 * middle; this thread types and writes the first half, a worker (import-worker.ts) the second,
 * each into base parts of its own, which are checked against the disk where they were written.
 * The parts are listed first half first, so a key repeated across the halves keeps its later row,
 * as in one thread.
 *
 * The cut is right only if that line end is not inside a quoted field. The first half knows: its
 * parser must stand at a record's start there. If it does not, the first half simply goes on to
 * the end of the file and the worker's parts are dropped (slower, never wrong).
 *
 * Errors and bad rows keep their order and their place: the worker counts lines from the cut, and
 * its reports are moved by the first half's line count (known once the first half is done) and
 * given after the first half's.
 */
import { closeSync, fstatSync, openSync, readSync, ReadStream } from "node:fs";
import type { TableSchema } from "../format/schema.js";
import {
  PartedRecords,
  SegmentFileWriter,
  checkWrittenSegment,
  type PartsSpec,
  type WrittenSegment,
} from "../storage/segment-file-writer.js";
import { CsvParser } from "./csv-parser.js";
import { ImportRowError } from "./errors.js";
import { importThreads, inTwoThreads, removeParts } from "./import-threads.js";
import {
  ENCODE_PIECE_BYTES,
  makeParser,
  type ImportFormat,
  type ReadImportOptions,
} from "./import-reader.js";

/** Smaller files are imported by one thread: a worker costs ~50 ms to start (tests lower it with STRATA_IMPORT_SPLIT_MIN_BYTES). */
export const PARALLEL_MIN_BYTES = 32 * 1024 * 1024;
const READ_BYTES = 1 << 20;

/** What one thread does: type rows of `path` in [start, end) into base parts. */
export interface RangeJob {
  path: string;
  start: number;
  end: number;
  /** The range starts the file (it has the header); else the header is read from the file's start. */
  first: boolean;
  schema: TableSchema;
  defaultEventTimeMs: number;
  eventTimeField: string | undefined;
  /** Report bad rows (as --skip-bad-rows) instead of failing on the first one. */
  collectBadRows: boolean;
  spec: PartsSpec;
}

export interface BadRowReport {
  reason: string;
  line: number;
  column: number | null;
  field: string | null;
  raw: string;
}

export interface RangeResult {
  parts: WrittenSegment[];
  bad: BadRowReport[];
  /** First range: line feeds before `end` (the worker's line numbers are moved by this). */
  linesBefore: number;
  /** First range: the cut was inside a record, so this range went on to the end of the file. */
  wholeFile: boolean;
}

/** The file behind `stream`, when it is a whole file opened by createReadStream and not yet read. */
function wholeFilePath(stream: unknown): string | null {
  if (!(stream instanceof ReadStream)) return null;
  const s = stream as ReadStream & { start?: number; end?: number };
  if (typeof s.path !== "string" || s.bytesRead !== 0 || s.start !== undefined) return null;
  if (s.end !== undefined && s.end !== Infinity) return null;
  return s.path;
}

/**
 * Imports the file behind `stream` in two halves at once, or returns null (nothing read) when it
 * is not a large plain CSV file or the worker's code is not built (running from the TS sources).
 */
export async function encodeFileParts(
  stream: unknown,
  format: ImportFormat,
  schema: TableSchema,
  options: ReadImportOptions,
  spec: PartsSpec,
  onProgress: ((rows: number) => void) | undefined,
): Promise<WrittenSegment[] | null> {
  if (format !== "csv" || options.csvFastPath === false || importThreads() < 2) return null;
  const workerUrl = new URL("./import-worker.js", import.meta.url);
  if (!import.meta.url.endsWith(".js")) return null;
  const path = wholeFilePath(stream);
  if (path === null) return null;
  const cut = findCut(path);
  if (cut === null) return null;
  (stream as ReadStream).destroy();

  const job = (start: number, end: number, first: boolean): RangeJob => ({
    path,
    start,
    end,
    first,
    schema,
    defaultEventTimeMs: options.defaultEventTimeMs,
    eventTimeField: options.eventTimeField,
    collectBadRows: options.onBadRow !== undefined,
    spec,
  });
  const report = (bad: BadRowReport[], lines: number): void => {
    for (const b of bad) options.onBadRow!(rebuildError(b, lines), b.raw);
  };
  const { first, second } = await inTwoThreads({
    worker: workerUrl,
    workerData: job(cut.at, cut.size, false),
    first: (progress) => {
      const result = encodeRange(job(0, cut.at, true), progress);
      report(result.bad, 0);
      return result;
    },
    onProgress,
    // The cut was inside a record: the first half read on to the end of the file.
    keepSecond: (result) => !result.wholeFile,
    secondError: (err, result) =>
      err instanceof ImportRowError ? rebuildError(err, result.linesBefore) : err,
  });
  if (second === null) return first.parts;
  report(second.bad, first.linesBefore);
  return [...first.parts, ...second.parts];
}

/** A line end near the middle of the file; null for a small file (or none after the middle). */
function findCut(path: string): { at: number; size: number } | null {
  const fd = openSync(path, "r");
  try {
    const size = fstatSync(fd).size;
    const min = Number(process.env.STRATA_IMPORT_SPLIT_MIN_BYTES ?? PARALLEL_MIN_BYTES);
    if (size < min || size < 2) return null;
    const buf = Buffer.allocUnsafe(READ_BYTES);
    for (let from = Math.floor(size / 2); from < size; from += READ_BYTES) {
      const n = readSync(fd, buf, 0, READ_BYTES, from);
      const nl = buf.subarray(0, n).indexOf(0x0a);
      if (nl >= 0) return from + nl + 1 < size ? { at: from + nl + 1, size } : null;
    }
    return null;
  } finally {
    closeSync(fd);
  }
}

/** Types the rows of one range into base parts, finishes and checks them. Synchronous. */
export function encodeRange(job: RangeJob, onProgress: (rows: number) => void): RangeResult {
  const fd = openSync(job.path, "r");
  const parts: WrittenSegment[] = [];
  let part: SegmentFileWriter | null = null;
  try {
    const header = job.first ? null : readHeader(fd, job.end);
    part = new SegmentFileWriter(job.spec.dataDir, job.spec.encoder);
    const target = new PartedRecords(part.records, job.spec.maxBytes, () => {
      parts.push(part!.finish());
      part = new SegmentFileWriter(job.spec.dataDir, job.spec.encoder);
      return part.records;
    });
    const bad: BadRowReport[] = [];
    const options: ReadImportOptions = {
      defaultEventTimeMs: job.defaultEventTimeMs,
      ...(job.eventTimeField === undefined ? {} : { eventTimeField: job.eventTimeField }),
      ...(job.collectBadRows
        ? {
            onBadRow: (err, raw) =>
              bad.push({ reason: err.reason, line: err.line, column: err.column, field: err.field, raw }),
          }
        : {}),
    };
    const input = makeParser(
      "csv",
      job.schema,
      options,
      target,
      job.spec.encoder.layout,
      (row) => {
        target.add(row.key, row.eventTimeMs, row.values);
        input.rows++;
      },
      { header, fileStart: job.first },
    );
    const parser = input.parser as CsvParser;
    // Two buffers in turn: the parser may still need the previous one's unfinished record.
    const bufs = [Buffer.allocUnsafe(READ_BYTES), Buffer.allocUnsafe(READ_BYTES)];
    let turn = 0;
    const feed = (from: number, to: number): void => {
      for (let at = from; at < to;) {
        const buf = bufs[turn++ & 1]!;
        const n = readSync(fd, buf, 0, Math.min(READ_BYTES, to - at), at);
        if (n === 0) break;
        for (let off = 0; off < n; off += ENCODE_PIECE_BYTES) {
          parser.push(buf.subarray(off, Math.min(n, off + ENCODE_PIECE_BYTES)));
        }
        at += n;
        onProgress(input.rows);
      }
    };
    feed(job.start, job.end);
    let wholeFile = false;
    let linesBefore = 0;
    if (job.first && input.sawHeader() && parser.atRecordBoundary()) {
      linesBefore = parser.currentLine - 1;
    } else {
      if (job.first) {
        wholeFile = true;
        feed(job.end, fstatSync(fd).size);
      }
      parser.end();
    }
    onProgress(input.rows);
    const last = part as SegmentFileWriter;
    part = null;
    parts.push(last.finish());
    for (const p of parts) checkWrittenSegment(p);
    return { parts, bad, linesBefore, wholeFile };
  } catch (err) {
    (part as SegmentFileWriter | null)?.abort();
    removeParts(parts);
    throw err;
  } finally {
    closeSync(fd);
  }
}

/** The header record of the file (names and line), read from its start. */
function readHeader(fd: number, limit: number): { names: string[]; line: number } {
  let header: { names: string[]; line: number } | null = null;
  const stop = new Error("header read");
  const parser = new CsvParser({
    onRecord: (rec) => {
      header = { names: rec.toArray(), line: rec.line };
      throw stop; // the rest is the first half's
    },
    // A bad header is the first half's to report.
    onError: () => {},
  });
  const buf = Buffer.allocUnsafe(64 * 1024);
  try {
    for (let at = 0; header === null && at < limit;) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, limit - at), at);
      if (n === 0) break;
      parser.push(Buffer.from(buf.subarray(0, n)));
      at += n;
    }
  } catch (err) {
    if (err !== stop) throw err;
  }
  if (header === null) throw new ImportRowError("no header row before the second half", { line: 1 });
  return header;
}

/** A report of the second half, at its place in the whole file. */
function rebuildError(
  e: { reason: string; line: number; column: number | null; field: string | null },
  lines: number,
) {
  const reason =
    lines === 0
      ? e.reason
      : e.reason.replace(
          /\(opened on line (\d+)\)/,
          (_, n: string) => `(opened on line ${Number(n) + lines})`,
        );
  return new ImportRowError(reason, { line: e.line + lines, column: e.column, field: e.field });
}
