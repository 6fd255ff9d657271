/**
 * A Parquet file of several row groups imported by two threads at once: the row groups are cut
 * where half the rows are behind; this thread types and writes the first ones, a worker
 * (parquet-import-worker.ts) the rest, each into base parts of its own, which are checked against
 * the disk where they were written. The parts are listed first half first, so a key repeated
 * across the halves keeps its later row, as in one thread. Unlike a CSV file's, the cut is always
 * right (row groups are self-contained) and the rows keep their numbers (the metadata says how
 * many come before each group), so bad rows are reported as one thread would, first half first.
 *
 * Decoding and typing rows in JavaScript are all of a Parquet import's time; on two cores the
 * second thread gains 1.2-1.4x, not 2x, since V8's collector already works on both
 * (docs/import.md).
 */
import type { TableSchema } from "../format/schema.js";
import {
  SegmentFileWriter,
  checkWrittenSegment,
  type PartsSpec,
  type WrittenSegment,
} from "../storage/segment-file-writer.js";
import { ImportRowError } from "./errors.js";
import { importThreads, inTwoThreads, removeParts } from "./import-threads.js";
import { readParquetRows, type ReadParquetOptions } from "./parquet-reader.js";

/** Smaller files are imported by one thread: a worker costs ~100 ms to start and load hyparquet. */
export const PARQUET_PARALLEL_MIN_ROWS = 200_000;

/** What one thread does: type the rows of row groups [from, to) of `path` into base parts. */
export interface RowGroupJob {
  path: string;
  from: number;
  to: number;
  schema: TableSchema;
  defaultEventTimeMs: number;
  eventTimeField: string | undefined;
  /** Report bad rows (as --skip-bad-rows) instead of failing on the first one. */
  collectBadRows: boolean;
  spec: PartsSpec;
}

export interface BadParquetRow {
  reason: string;
  row: number;
  field: string | null;
  raw: string;
}

/**
 * Imports the file in two halves of its row groups at once, or returns null (nothing read) when it
 * has too few rows or row groups, one thread is asked for, or the worker's code is not built
 * (running from the TS sources).
 */
export async function encodeParquetParts(
  path: string,
  rowGroupRows: number[],
  schema: TableSchema,
  options: ReadParquetOptions,
  spec: PartsSpec,
  onProgress: ((rows: number) => void) | undefined,
): Promise<WrittenSegment[] | null> {
  const threads = importThreads();
  const total = rowGroupRows.reduce((a, b) => a + b, 0);
  const min = Number(process.env.STRATA_IMPORT_SPLIT_MIN_ROWS ?? PARQUET_PARALLEL_MIN_ROWS);
  if (threads < 2 || rowGroupRows.length < 2 || total < min || !import.meta.url.endsWith(".js")) return null;
  // The first group after which at least half the rows are behind (never the last).
  let cut = 1;
  for (let behind = rowGroupRows[0]!; cut < rowGroupRows.length - 1 && behind * 2 < total; cut++)
    behind += rowGroupRows[cut]!;

  const job = (from: number, to: number): RowGroupJob => ({
    path,
    from,
    to,
    schema,
    defaultEventTimeMs: options.defaultEventTimeMs,
    eventTimeField: options.eventTimeField,
    collectBadRows: options.onBadRow !== undefined,
    spec,
  });
  const { first, second } = await inTwoThreads({
    worker: new URL("./parquet-import-worker.js", import.meta.url),
    workerData: job(cut, rowGroupRows.length),
    first: (progress) => encodeRowGroups(job(0, cut), progress),
    onProgress,
  });
  const halves = [first, second!];
  for (const b of halves.flatMap((h) => h.bad)) {
    options.onBadRow!(new ImportRowError(b.reason, { line: b.row, field: b.field, unit: "row" }), b.raw);
  }
  return halves.flatMap((h) => h.parts);
}

export interface RowGroupResult {
  parts: WrittenSegment[];
  bad: BadParquetRow[];
}

/** Types the rows of one job's row groups into base parts, finishes and checks them. */
export async function encodeRowGroups(
  job: RowGroupJob,
  onProgress: (rows: number) => void,
): Promise<RowGroupResult> {
  const parts: WrittenSegment[] = [];
  const bad: BadParquetRow[] = [];
  let part: SegmentFileWriter | null = new SegmentFileWriter(job.spec.dataDir, job.spec.encoder);
  try {
    let count = 0;
    const rows = readParquetRows(job.path, job.schema, {
      defaultEventTimeMs: job.defaultEventTimeMs,
      ...(job.eventTimeField === undefined ? {} : { eventTimeField: job.eventTimeField }),
      ...(job.collectBadRows
        ? {
            onBadRow: (err: ImportRowError, raw: string) =>
              bad.push({ reason: err.reason, row: err.line, field: err.field, raw }),
          }
        : {}),
      rowGroups: [job.from, job.to],
    });
    for await (const batch of rows) {
      for (const row of batch) {
        if (part.estimatedBytes > job.spec.maxBytes) {
          parts.push(part.finish());
          part = new SegmentFileWriter(job.spec.dataDir, job.spec.encoder);
        }
        part.add(row.key, row.eventTimeMs, row.values);
      }
      count += batch.length;
      onProgress(count);
    }
    const last = part;
    part = null;
    parts.push(last.finish());
    for (const p of parts) checkWrittenSegment(p);
    return { parts, bad };
  } catch (err) {
    part?.abort();
    removeParts(parts);
    throw err;
  }
}
