/**
 * Parquet import files → batches of typed rows, one row group at a time, so that memory holds one
 * row group's rows and never the file (the writer chose the row groups: DuckDB's are 122,880 rows,
 * pyarrow's up to 1 Mi, Spark's about 128 MB). Decoding is hyparquet's (pure JS, every codec Spark,
 * pyarrow and DuckDB write, with hyparquet-compressors).
 *
 * Columns are matched by name as a CSV header is: the key column, the optional event-time column
 * and one column per feature, in any order; a column the table does not have is refused, as in CSV
 * and JSONL, so that a misspelt feature is not silently dropped. Parquet's own types carry the
 * values, checked against the feature types (docs/import.md#parquet):
 *
 *   float32, float64   FLOAT, DOUBLE, INT32, DECIMAL; INT64 within ±2^53
 *   int64              INT64, INT32 (and the unsigned and narrower integer annotations)
 *   bool               BOOLEAN
 *   string             BYTE_ARRAY (UTF8 or unannotated, which must then be valid UTF-8)
 *   bytes              BYTE_ARRAY, FIXED_LEN_BYTE_ARRAY
 *   float32[N]         a LIST of N numbers (FLOAT or DOUBLE elements, none null)
 *   key                a string, or an integer (written in decimal, as CSV would have it)
 *   event time         integer milliseconds, or a TIMESTAMP
 *
 * A bad value throws an {@link ImportRowError} naming the row (1-based, across row groups) and the
 * column, or goes to `onBadRow` with the row as JSON when that is given.
 */
import { asyncBufferFromFile, parquetMetadataAsync, parquetRead, parquetSchema } from "hyparquet";
import type { AsyncBuffer, FileMetaData } from "hyparquet";
import { compressors } from "hyparquet-compressors";
import { featureKinds, type FeatureKind, type FeatureValue, type TableSchema } from "../format/schema.js";
import { ImportFileError, ImportRowError } from "./errors.js";
import {
  INT64_MAX,
  INT64_MIN,
  describeJson,
  MAX_KEY_BYTES,
  eventTimeName,
  float32Vector,
  floatValue,
  isWellFormed,
  type ImportRow,
  type RowCoercionOptions,
} from "./row-coercion.js";
import { errorMessage } from "../shared/errors.js";
import { ENCODE_PARTS, type PartsEncodable, type PartsSpec } from "../storage/segment-file-writer.js";

export interface ReadParquetOptions extends RowCoercionOptions {
  /** Report-and-skip for bad rows (the row as JSON); without it the first bad row throws. */
  onBadRow?: (err: ImportRowError, rawRow: string) => void;
  /** Rows per yielded batch (the last of a row group may be shorter); default 1024. */
  batchSize?: number;
  /** Only row groups [from, to) (their rows keep their numbers in the file); default all. */
  rowGroups?: [number, number];
}

/**
 * Batches of a Parquet file's rows, and how far through the file they are (compressed bytes). It
 * also offers {@link ENCODE_PARTS}, which `VersionWriter.importRows` tries first: a large file is
 * then written by two threads (parquet-parts.ts), and the batches are never read.
 */
export interface ParquetRows extends AsyncGenerator<ImportRow[]>, PartsEncodable {
  readonly bytesRead: number;
}

export function readParquetRows(path: string, schema: TableSchema, options: ReadParquetOptions): ParquetRows {
  const progress = { bytesRead: 0 };
  // The footer is read once, whether the parts or the batches ask for it first.
  let opened: ReturnType<typeof openParquet> | undefined;
  const open = () => (opened ??= openParquet(path));
  const rows = batches(path, open, schema, options, progress);
  Object.defineProperty(rows, "bytesRead", { get: () => progress.bytesRead });
  return Object.assign(rows, {
    [ENCODE_PARTS]: async (spec: PartsSpec, onProgress?: (rows: number) => void) => {
      if (options.rowGroups) return null;
      const { encodeParquetParts } = await import("./parquet-parts.js");
      const { metadata } = await open();
      const groupRows = metadata.row_groups.map((g) => Number(g.num_rows));
      return encodeParquetParts(path, groupRows, schema, options, spec, onProgress);
    },
  }) as ParquetRows;
}

/** The file and its metadata (footer), or an ImportFileError when it is not Parquet. */
async function openParquet(path: string): Promise<{ file: AsyncBuffer; metadata: FileMetaData }> {
  const file = await asyncBufferFromFile(path);
  try {
    return { file, metadata: await parquetMetadataAsync(file) };
  } catch (err) {
    throw new ImportFileError(`Cannot read "${path}" as Parquet: ${errorMessage(err)}`, { cause: err });
  }
}

async function* batches(
  path: string,
  open: () => ReturnType<typeof openParquet>,
  schema: TableSchema,
  options: ReadParquetOptions,
  progress: { bytesRead: number },
): AsyncGenerator<ImportRow[]> {
  const { file, metadata } = await open();
  // pandas writes a DataFrame's index as a column of its own unless it is the default one.
  const columns = parquetSchema(metadata)
    .children.map((c) => c.element.name)
    .filter((name) => !PANDAS_INDEX.test(name));
  const coercer = new ParquetRowCoercer(schema, columns, options);
  const batchSize = options.batchSize ?? 1024;
  const [from, to] = options.rowGroups ?? [0, metadata.row_groups.length];
  let rowStart = 0;
  for (const group of metadata.row_groups.slice(0, from)) rowStart += Number(group.num_rows);
  for (const group of metadata.row_groups.slice(from, to)) {
    const rowEnd = rowStart + Number(group.num_rows);
    // Column by column (hyparquet's own form): no object per row to make and collect.
    const pieces = new Map<string, { rowStart: number; data: ArrayLike<unknown> }[]>();
    try {
      await parquetRead({
        file,
        metadata,
        rowStart,
        rowEnd,
        columns,
        // Unannotated BYTE_ARRAY columns stay bytes: a bytes feature needs them as they are, and
        // a string feature checks that they are UTF-8.
        utf8: false,
        compressors,
        onChunk: ({ columnName, columnData, rowStart: at }) => {
          const list = pieces.get(columnName) ?? [];
          list.push({ rowStart: at, data: columnData as ArrayLike<unknown> });
          pieces.set(columnName, list);
        },
      });
    } catch (err) {
      throw new ImportFileError(
        `Cannot read rows ${rowStart + 1} to ${rowEnd} of "${path}": ${errorMessage(err)}`,
        { cause: err },
      );
    }
    const data = columns.map((name) => joinPieces(pieces.get(name) ?? [], rowStart, rowEnd));
    let batch: ImportRow[] = [];
    for (let i = 0; i < rowEnd - rowStart; i++) {
      const row = rowStart + i + 1;
      try {
        batch.push(coercer.coerce(data, i, row));
      } catch (err) {
        if (!(err instanceof ImportRowError) || !options.onBadRow) throw err;
        const raw = Object.fromEntries(columns.map((name, c) => [name, data[c]![i]]));
        options.onBadRow(err, JSON.stringify(raw, jsonSafe));
      }
      if (batch.length >= batchSize) {
        yield batch;
        batch = [];
      }
    }
    progress.bytesRead += Number(group.total_compressed_size ?? group.total_byte_size);
    if (batch.length > 0) yield batch;
    rowStart = rowEnd;
  }
}

const PANDAS_INDEX = /^__index_level_\d+__$/;

/** One column's values for rows [rowStart, rowEnd) of the file, from the pieces it came in. */
function joinPieces(
  pieces: { rowStart: number; data: ArrayLike<unknown> }[],
  rowStart: number,
  rowEnd: number,
): ArrayLike<unknown> {
  const only = pieces[0];
  if (pieces.length === 1 && only!.rowStart === rowStart && only!.data.length >= rowEnd - rowStart)
    return only!.data;
  const out = new Array<unknown>(rowEnd - rowStart).fill(null);
  for (const piece of pieces) {
    for (let j = 0; j < piece.data.length; j++) {
      const at = piece.rowStart + j - rowStart;
      if (at >= 0 && at < out.length) out[at] = piece.data[j];
    }
  }
  return out;
}

/** Types the rows of one Parquet file for a table: columns by name, values by feature type. */
class ParquetRowCoercer {
  private readonly kinds: FeatureKind[];
  /** Per file column: its feature index, or KEY, EVENT_TIME. */
  private readonly targets: { name: string; target: number }[];

  constructor(
    private readonly schema: TableSchema,
    columns: string[],
    private readonly options: RowCoercionOptions,
  ) {
    this.kinds = featureKinds(schema);
    const eventTime = eventTimeName(schema, options);
    const features = new Map(schema.features.map((f, i) => [f.name, i]));
    this.targets = columns.map((name) => {
      const target =
        name === schema.key ? KEY : name === eventTime ? EVENT_TIME : (features.get(name) ?? UNKNOWN);
      if (target === UNKNOWN) {
        throw new ImportFileError(
          `column ${JSON.stringify(name)} is not in table "${schema.name}": it has key ${JSON.stringify(schema.key)}` +
            `${eventTime === null ? "" : `, event time ${JSON.stringify(eventTime)}`} and features ` +
            schema.features.map((f) => JSON.stringify(f.name)).join(", "),
        );
      }
      return { name, target };
    });
    if (!columns.includes(schema.key)) {
      throw new ImportFileError(`the file has no key column ${JSON.stringify(schema.key)}`);
    }
  }

  /** The value being typed, for its error: one object for every value (no closure each). */
  private readonly cell = {
    v: undefined as unknown,
    name: "",
    row: 0,
    fail(why: string): ImportRowError {
      return new ImportRowError(`${describeJson(this.v, jsonSafe)} ${why}`, {
        line: this.row,
        field: this.name,
        unit: "row",
      });
    },
  };

  /** Types row `i` of `columns` (the file's columns, in its order); `row` is its number in the file. */
  coerce(columns: ArrayLike<unknown>[], i: number, row: number): ImportRow {
    const values = new Array<FeatureValue>(this.kinds.length).fill(null);
    let key = "";
    let eventTimeMs = this.options.defaultEventTimeMs;
    const cell = this.cell;
    cell.row = row;
    const fail: Fail = (why) => cell.fail(why);
    for (let c = 0; c < this.targets.length; c++) {
      const { name, target } = this.targets[c]!;
      const v = columns[c]![i];
      cell.v = v;
      cell.name = name;
      if (target === KEY) key = rowKey(v, fail);
      else if (target === EVENT_TIME) {
        if (v !== null && v !== undefined) eventTimeMs = eventTime(v, fail);
      } else if (v !== null && v !== undefined) {
        values[target] = featureValue(v, this.kinds[target]!, this.schema.features[target]!.type, fail);
      }
    }
    return { key, values, eventTimeMs };
  }
}

const KEY = -1;
const EVENT_TIME = -2;
const UNKNOWN = -3;

type Fail = (why: string) => ImportRowError;

function rowKey(v: unknown, fail: Fail): string {
  let key: string;
  if (typeof v === "string") key = v;
  else if (typeof v === "bigint" || (typeof v === "number" && Number.isInteger(v))) key = String(v);
  else if (v instanceof Uint8Array) key = utf8(v, fail, "is not a key: it is not valid UTF-8");
  else
    throw fail(
      v === null || v === undefined ? "is not a key: the key is missing" : "is not a key (a string)",
    );
  if (key.length === 0) throw fail("is not a key: the key is empty");
  if (!isWellFormed(key)) throw fail("is not a key: it is not valid UTF-8 (a lone surrogate)");
  const bytes = Buffer.byteLength(key);
  if (bytes > MAX_KEY_BYTES)
    throw fail(`is not a key: it is ${bytes} UTF-8 bytes long, more than ${MAX_KEY_BYTES}`);
  return key;
}

function eventTime(v: unknown, fail: Fail): number {
  const ms = v instanceof Date ? v.getTime() : typeof v === "bigint" ? Number(v) : v;
  if (typeof ms !== "number" || !Number.isSafeInteger(ms) || ms < 0)
    throw fail("is not an event time (integer milliseconds >= 0, or a TIMESTAMP after 1970)");
  return ms;
}

function featureValue(v: unknown, kind: FeatureKind, type: string, fail: Fail): FeatureValue {
  const wrongType = () => fail(`is not ${type === "int64" ? "an" : "a"} ${type}`);
  switch (kind.type) {
    case "float32":
    case "float64":
      return floatValue(number(v), kind.type === "float32", type, fail);
    case "int64":
      if (typeof v === "bigint") {
        if (v < INT64_MIN || v > INT64_MAX) throw fail("is out of the int64 range");
        return v;
      }
      if (typeof v === "number" && Number.isInteger(v)) return BigInt(v);
      throw wrongType();
    case "bool":
      if (typeof v !== "boolean") throw wrongType();
      return v;
    case "string":
      if (typeof v === "string") {
        if (!isWellFormed(v)) throw fail("is not valid UTF-8 (a lone surrogate)");
        return v;
      }
      if (v instanceof Uint8Array) return utf8(v, fail, "is not a string: it is not valid UTF-8");
      throw wrongType();
    case "bytes":
      if (v instanceof Uint8Array) return v;
      // A BYTE_ARRAY annotated as UTF8 arrives as text: its bytes are what was written.
      if (typeof v === "string") return Buffer.from(v, "utf8");
      throw wrongType();
    case "float32_vector":
      if (!Array.isArray(v) && !(v instanceof Float32Array) && !(v instanceof Float64Array))
        throw fail(`is not a ${type} (expected a list of ${kind.length} numbers)`);
      return float32Vector(v, kind.length, type, number, fail);
  }
}

const UTF8 = new TextDecoder("utf-8", { fatal: true });

/** A number from FLOAT, DOUBLE, DECIMAL or an integer column (an INT64 only within ±2^53). */
function number(v: unknown): number | undefined {
  if (typeof v === "number") return v;
  if (typeof v === "bigint" && v >= -(2n ** 53n) && v <= 2n ** 53n) return Number(v);
  return undefined;
}

function utf8(bytes: Uint8Array, fail: Fail, why: string): string {
  try {
    return UTF8.decode(bytes);
  } catch {
    throw fail(why);
  }
}

/** JSON.stringify's replacer for Parquet values: bigints as digits, bytes as base64, NaN as "NaN". */
function jsonSafe(_key: string, v: unknown): unknown {
  if (typeof v === "number" && !Number.isFinite(v)) return String(v);
  if (typeof v === "bigint") return v.toString();
  if (v instanceof Uint8Array) return Buffer.from(v).toString("base64");
  if (v instanceof Date) return v.toISOString();
  return v;
}
