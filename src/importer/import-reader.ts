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
import { CsvParser } from "./csv-parser.js";
import { ImportFileError, ImportRowError } from "./errors.js";
import { JsonlParser } from "./jsonl-parser.js";
import { CsvRowCoercer, JsonRowCoercer, type ImportRow, type RowCoercionOptions } from "./row-coercion.js";

export type ImportFormat = "csv" | "jsonl";

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
}

export const DEFAULT_BATCH_SIZE = 1024;
/** Chunks are parsed in pieces of at most this size, so one huge chunk cannot pile up rows. */
export const MAX_PIECE_BYTES = 64 * 1024;

/** The format of an import file, from its extension: .csv, or .jsonl / .ndjson. */
export function detectImportFormat(path: string): ImportFormat {
  const lower = path.toLowerCase();
  if (lower.endsWith(".csv")) return "csv";
  if (lower.endsWith(".jsonl") || lower.endsWith(".ndjson")) return "jsonl";
  throw new ImportFileError(
    `Cannot tell the format of import file "${path}" from its extension: expected .csv, .jsonl or .ndjson`,
  );
}

export async function* readImportRows(
  stream: AsyncIterable<Buffer | Uint8Array | string>,
  format: ImportFormat,
  schema: TableSchema,
  options: ReadImportOptions,
): AsyncGenerator<ImportRow[]> {
  const batchSize = Math.max(1, options.batchSize ?? DEFAULT_BATCH_SIZE);
  const onBadRow = options.onBadRow;
  let batch: ImportRow[] = [];
  const ready: ImportRow[][] = [];
  const add = (row: ImportRow): void => {
    batch.push(row);
    if (batch.length >= batchSize) {
      ready.push(batch);
      batch = [];
    }
  };

  let parser: CsvParser | JsonlParser;
  let sawHeader = true;
  if (format === "csv") {
    let coercer: CsvRowCoercer | null = null;
    sawHeader = false;
    const csv: CsvParser = new CsvParser({
      onRecord: (rec) => {
        if (coercer === null) {
          if (rec.isBlank()) throw new ImportRowError("the header row is empty", { line: rec.line });
          coercer = new CsvRowCoercer(schema, rec.toArray(), options, rec.line);
          csv.setColumnNames(coercer.columnNames);
          sawHeader = true;
          return;
        }
        if (rec.isBlank()) return;
        if (onBadRow === undefined) {
          add(coercer.coerce(rec));
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
        add(row);
      },
      tryRecord:
        options.csvFastPath === false
          ? undefined
          : (rec, start, limit) => {
              if (coercer === null) return -1;
              const row = coercer.tryLine(rec, start, limit);
              if (row === null) return -1;
              add(row);
              return coercer.fastNext;
            },
      // A malformed header is fatal: skipping it would take the first row for the header.
      onError:
        onBadRow === undefined
          ? undefined
          : (err, raw) => {
              if (coercer === null) throw err;
              onBadRow(err, raw);
            },
    });
    parser = csv;
  } else if (format === "jsonl") {
    const coercer = new JsonRowCoercer(schema, options);
    parser = new JsonlParser({
      onValue: (value, line, text) => {
        if (onBadRow === undefined) {
          add(coercer.coerce(value, line));
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
        add(row);
      },
      onError: onBadRow,
    });
  } else {
    throw new ImportFileError(`Unknown import format ${JSON.stringify(format)}: expected "csv" or "jsonl"`);
  }

  for await (const chunk of stream) {
    const data = typeof chunk === "string" ? Buffer.from(chunk, "utf8") : chunk;
    for (let off = 0; off < data.length; off += MAX_PIECE_BYTES) {
      parser.push(data.length <= MAX_PIECE_BYTES ? data : data.subarray(off, off + MAX_PIECE_BYTES));
      if (ready.length > 0) {
        const out = ready.splice(0);
        for (const rows of out) yield rows;
      }
    }
  }
  parser.end();
  if (!sawHeader) throw new ImportRowError("the file is empty: no header row", { line: 1 });
  for (const rows of ready) yield rows;
  if (batch.length > 0) yield batch;
}
