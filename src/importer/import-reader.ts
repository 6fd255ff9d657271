/**
 * Import files → batches of typed rows, streaming: the caller pulls batches, and only the chunk
 * being parsed (cut into pieces of at most {@link MAX_PIECE_BYTES}) and the rows of its batches
 * are in memory at a time, never the whole file.
 *
 *   for await (const rows of readImportRows(createReadStream(path), detectImportFormat(path), schema,
 *       { defaultEventTimeMs: Date.now() })) builder.add(rows);
 *
 * A bad row throws an {@link ImportRowError} (naming its line, column and reason), unless
 * `onBadRow` is given: then it is reported there and skipped. Problems of the CSV header (an
 * unknown or repeated column, no key column, a malformed header line) are always thrown.
 * Blank lines are skipped in both formats.
 */
import type { TableSchema } from "../format/schema.js";
import { CsvParser, type RecordTaker } from "./csv-parser.js";
import { ImportFileError, ImportRowError } from "./errors.js";
import { JsonlParser } from "./jsonl-parser.js";
import { NativeLines } from "./native-lines.js";
import { CsvRowCoercer, JsonRowCoercer, type ImportRow, type RowCoercionOptions } from "./row-coercion.js";
import type { RowLayout } from "../format/row-layout.js";
import { ENCODE_INTO, type EncodableRows, type RecordTarget } from "../format/segment-encoder.js";
import { ENCODE_PARTS, type PartsEncodable, type PartsSpec } from "../storage/segment-file-writer.js";

/** The text formats read here; Parquet files are read by parquet-reader.ts. */
export type ImportFormat = "csv" | "jsonl";
export type ImportFileFormat = ImportFormat | "parquet";

export interface ReadImportOptions extends RowCoercionOptions {
  /** Report-and-skip for bad rows; without it the first bad row throws. */
  onBadRow?: (err: ImportRowError, rawLine: string) => void;
  /** Rows per yielded batch (the last may be shorter); default 1024. */
  batchSize?: number;
  /**
   * CSV only: type plain lines straight from their bytes (the default). false tokenises every
   * record first; the rows and errors are the same, only slower (tests compare the two).
   */
  csvFastPath?: boolean;
  /**
   * CSV into records (ENCODE_INTO) only: type plain lines in the addon (native/csv_encode.cc, the
   * default) before trying tryLineInto, its JS reference; the bytes are the same (tests compare).
   */
  csvNative?: boolean;
}

export const DEFAULT_BATCH_SIZE = 1024;
/** Chunks are parsed in pieces of at most this size, so one huge chunk cannot pile up rows. */
export const MAX_PIECE_BYTES = 64 * 1024;
/**
 * Rows typed into records pile up nowhere, so those chunks are parsed in larger pieces: a line
 * cut by a piece's end goes through the tokeniser, and the next piece is copied after it.
 */
export const ENCODE_PIECE_BYTES = 1024 * 1024;

/**
 * The format of an import file, from its extension: .csv, .jsonl / .ndjson (either also
 * gzip-compressed, .gz), or .parquet / .pq.
 */
export function detectImportFormat(path: string): ImportFileFormat {
  if (path === "-")
    throw new ImportFileError(
      "Cannot tell the format of standard input: give --format csv or --format jsonl",
    );
  const lower = path.toLowerCase().replace(/\.gz$/, "");
  if (lower.endsWith(".csv")) return "csv";
  if (lower.endsWith(".jsonl") || lower.endsWith(".ndjson")) return "jsonl";
  if ((lower.endsWith(".parquet") || lower.endsWith(".pq")) && !path.toLowerCase().endsWith(".gz"))
    return "parquet";
  throw new ImportFileError(
    `Cannot tell the format of import file "${path}" from its extension: expected .csv, .jsonl, .ndjson (or any of them .gz), .parquet or .pq (or give --format)`,
  );
}

/**
 * The rows of an import file in batches. The result also offers {@link ENCODE_INTO}, which
 * `VersionWriter.importRows` uses instead of iterating: CSV lines are then typed straight into
 * segment records (no row objects in between), the rest go row by row. Either way is lazy: the
 * stream is read only by whichever is used, once.
 */
export function readImportRows(
  stream: AsyncIterable<Buffer | Uint8Array | string>,
  format: ImportFormat,
  schema: TableSchema,
  options: ReadImportOptions,
): AsyncGenerator<ImportRow[]> & EncodableRows & PartsEncodable {
  const rows = batchedRows(stream, format, schema, options);
  return Object.assign(rows, {
    [ENCODE_INTO]: (target: RecordTarget, layout: RowLayout, onProgress?: (rows: number) => void) =>
      encodeRows(stream, format, schema, options, target, layout, onProgress),
    [ENCODE_PARTS]: async (spec: PartsSpec, onProgress?: (rows: number) => void) =>
      (await import("./parallel-import.js")).encodeFileParts(
        stream,
        format,
        schema,
        options,
        spec,
        onProgress,
      ),
  });
}

async function* batchedRows(
  stream: AsyncIterable<Buffer | Uint8Array | string>,
  format: ImportFormat,
  schema: TableSchema,
  options: ReadImportOptions,
): AsyncGenerator<ImportRow[]> {
  const batchSize = Math.max(1, options.batchSize ?? DEFAULT_BATCH_SIZE);
  let batch: ImportRow[] = [];
  const ready: ImportRow[][] = [];
  const input = makeParser(format, schema, options, null, null, (row) => {
    batch.push(row);
    if (batch.length >= batchSize) {
      ready.push(batch);
      batch = [];
    }
  });
  for await (const chunk of stream) {
    const data = typeof chunk === "string" ? Buffer.from(chunk, "utf8") : chunk;
    for (let off = 0; off < data.length; off += MAX_PIECE_BYTES) {
      input.parser.push(data.length <= MAX_PIECE_BYTES ? data : data.subarray(off, off + MAX_PIECE_BYTES));
      if (ready.length > 0) {
        const out = ready.splice(0);
        for (const rows of out) yield rows;
      }
    }
  }
  input.parser.end();
  for (const rows of ready) yield rows;
  if (batch.length > 0) yield batch;
}

/** Every row into `target`: plain CSV lines typed straight into their records, the rest as rows. */
async function encodeRows(
  stream: AsyncIterable<Buffer | Uint8Array | string>,
  format: ImportFormat,
  schema: TableSchema,
  options: ReadImportOptions,
  target: RecordTarget,
  layout: RowLayout,
  onProgress: ((rows: number) => void) | undefined,
): Promise<void> {
  const input = makeParser(format, schema, options, target, layout, (row) => {
    target.add(row.key, row.eventTimeMs, row.values);
    input.rows++;
  });
  for await (const chunk of stream) {
    const data = typeof chunk === "string" ? Buffer.from(chunk, "utf8") : chunk;
    for (let off = 0; off < data.length; off += ENCODE_PIECE_BYTES) {
      input.parser.push(
        data.length <= ENCODE_PIECE_BYTES ? data : data.subarray(off, off + ENCODE_PIECE_BYTES),
      );
    }
    onProgress?.(input.rows);
  }
  input.parser.end();
  onProgress?.(input.rows);
}

export interface ParserInput {
  parser: CsvParser | JsonlParser;
  sawHeader(): boolean;
  /** Rows typed straight into records, plus those `emit` counts. */
  rows: number;
}

/**
 * A parser that hands each good row to `emit` (bad ones to `options.onBadRow`, or throws). With a
 * `target`, plain CSV lines are typed into its records instead (counted in `rows`).
 */
export function makeParser(
  format: ImportFormat,
  schema: TableSchema,
  options: ReadImportOptions,
  target: RecordTarget | null,
  layout: RowLayout | null,
  emit: (row: ImportRow) => void,
  part: { header: { names: string[]; line: number } | null; fileStart: boolean } = {
    header: null,
    fileStart: true,
  },
): ParserInput {
  const onBadRow = options.onBadRow;
  if (format !== "csv" && format !== "jsonl") {
    throw new ImportFileError(`Unknown import format ${JSON.stringify(format)}: expected "csv" or "jsonl"`);
  }
  if (format === "jsonl") {
    const coercer = new JsonRowCoercer(schema, options);
    const parser = new JsonlParser({
      onValue: (value, line, text) => {
        if (onBadRow === undefined) {
          emit(coercer.coerce(value, line));
          return;
        }
        let row: ImportRow;
        try {
          row = coercer.coerce(value, line);
        } catch (err) {
          if (!(err instanceof ImportRowError)) throw err;
          onBadRow(err, text.length > 4096 ? text.slice(0, 4096) : text);
          return;
        }
        emit(row);
      },
      onError: onBadRow,
    });
    return { parser, sawHeader: () => true, rows: 0 };
  }
  let coercer: CsvRowCoercer | null = null;
  let fused = false;
  let native: NativeLines | null = null;
  const fast = options.csvFastPath !== false;
  const input: ParserInput = { parser: null!, sawHeader: () => coercer !== null, rows: 0 };
  const start = (names: string[], line: number): void => {
    coercer = new CsvRowCoercer(schema, names, options, line);
    fused = fast && target !== null && layout !== null && coercer.prepareInto(layout);
    const columns = fused && options.csvNative !== false ? coercer.fusedColumns() : null;
    native =
      columns !== null && NativeLines.accepts(options.defaultEventTimeMs)
        ? new NativeLines(columns, options.defaultEventTimeMs)
        : null;
  };
  // Plain lines: many at a time natively, else one by one in JS (which also takes the line the
  // native side stopped at, when it can).
  const taker: RecordTaker = {
    next: 0,
    take(rec, start, limit) {
      if (coercer === null) return 0;
      if (native !== null) {
        const n = native.take(rec.buf, start, limit, target!);
        if (n > 0) {
          input.rows += n;
          taker.next = native.next;
          return n;
        }
      }
      if (fused) {
        const next = coercer.tryLineInto(rec, start, limit, target!);
        if (next < 0) return 0;
        input.rows++;
        taker.next = next;
        return 1;
      }
      const row = coercer.tryLine(rec, start, limit);
      if (row === null) return 0;
      emit(row);
      taker.next = coercer.fastNext;
      return 1;
    },
  };
  const csv: CsvParser = new CsvParser({
    fileStart: part.fileStart,
    onRecord: (rec) => {
      if (coercer === null) {
        if (rec.isBlank()) throw new ImportRowError("the header row is empty", { line: rec.line });
        start(rec.toArray(), rec.line);
        csv.setColumnNames(rec.toArray());
        return;
      }
      if (rec.isBlank()) return;
      if (onBadRow === undefined) {
        emit(coercer.coerce(rec));
        return;
      }
      let row: ImportRow;
      try {
        row = coercer.coerce(rec);
      } catch (err) {
        if (!(err instanceof ImportRowError)) throw err;
        onBadRow(err, rec.raw());
        return;
      }
      emit(row);
    },
    tryRecords: fast ? taker : undefined,
    // A malformed header is fatal: skipping it would take the first row for the header.
    onError:
      onBadRow === undefined
        ? undefined
        : (err, raw) => {
            if (coercer === null) throw err;
            onBadRow(err, raw);
          },
  });
  if (part.header !== null) {
    // A later part of a file: the header was read from the file's start.
    start(part.header.names, part.header.line);
    csv.setColumnNames(part.header.names);
  }
  input.parser = csv;
  return input;
}
