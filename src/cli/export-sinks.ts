/**
 * Where `strata export` writes rows: JSON lines (what `import --format jsonl` reads back) or
 * Parquet (what `import` reads back, and what pandas, Spark, DuckDB and Feast's offline stores
 * read; docs/import.md#parquet has the types). A sink takes rows in scan order; `finish` writes
 * what it holds.
 */
import { writeSync } from "node:fs";
import { ParquetWriter, fileWriter } from "hyparquet-writer";
import type { FeatureKind, FeatureValue } from "../format/schema.js";
import { featureValueToJson, type JsonValue } from "../format/value-json.js";

export type ExportFormat = "jsonl" | "parquet";

export interface RowSink {
  row(key: string, eventTimeMs: number, values: readonly FeatureValue[]): void;
  finish(): void;
}

/** The columns of an export: the key, the event time (unless a feature has its name), the features. */
export interface ExportColumns {
  key: string;
  eventTime: string | null;
  features: { name: string; kind: FeatureKind }[];
}

/** Output is written in pieces of about this many bytes. */
const WRITE_BYTES = 1 << 20;

export class JsonlSink implements RowSink {
  private out = "";

  constructor(
    private readonly fd: number,
    private readonly columns: ExportColumns,
  ) {}

  row(key: string, eventTimeMs: number, values: readonly FeatureValue[]): void {
    const { features, eventTime } = this.columns;
    const row: Record<string, JsonValue> = { [this.columns.key]: key };
    if (eventTime) row[eventTime] = eventTimeMs;
    for (let f = 0; f < features.length; f++)
      row[features[f]!.name] = featureValueToJson(features[f]!.kind, values[f]!);
    this.out += JSON.stringify(row) + "\n";
    if (this.out.length >= WRITE_BYTES) this.flush();
  }

  finish(): void {
    this.flush();
  }

  private flush(): void {
    writeAll(this.fd, this.out);
    this.out = "";
  }
}

/** Rows per Parquet row group: what a reader holds at a time, as DuckDB's 122,880. */
export const PARQUET_ROW_GROUP_ROWS = 100_000;

export class ParquetSink implements RowSink {
  private readonly writer: ParquetWriter;
  private readonly data: unknown[][];

  constructor(
    path: string,
    private readonly columns: ExportColumns,
  ) {
    this.writer = new ParquetWriter({
      writer: fileWriter(path),
      schema: parquetSchema(columns),
      codec: "SNAPPY",
      createdBy: "strata export",
    });
    this.data = this.names().map(() => []);
  }

  row(key: string, eventTimeMs: number, values: readonly FeatureValue[]): void {
    let c = 0;
    this.data[c++]!.push(key);
    if (this.columns.eventTime) this.data[c++]!.push(BigInt(eventTimeMs));
    for (let f = 0; f < values.length; f++) {
      const v = values[f]!;
      // LIST columns take arrays; bytes go as they are.
      this.data[c++]!.push(v instanceof Float32Array ? Array.from(v) : v);
    }
    if (this.data[0]!.length >= PARQUET_ROW_GROUP_ROWS) this.flush();
  }

  finish(): void {
    this.flush();
    this.writer.finish();
  }

  private flush(): void {
    const rows = this.data[0]!.length;
    if (rows === 0) return;
    const names = this.names();
    this.writer.write({
      columnData: names.map((name, c) => ({ name, data: this.data[c]! })),
      rowGroupSize: rows,
    });
    for (const column of this.data) column.length = 0;
  }

  private names(): string[] {
    const { key, eventTime, features } = this.columns;
    return [key, ...(eventTime ? [eventTime] : []), ...features.map((f) => f.name)];
  }
}

type SchemaElement = ConstructorParameters<typeof ParquetWriter>[0]["schema"][number];

/** The Parquet type of each scalar feature type. */
const PARQUET_SCALARS: Record<Exclude<FeatureKind["type"], "float32_vector">, Partial<SchemaElement>> = {
  float32: { type: "FLOAT" },
  float64: { type: "DOUBLE" },
  int64: { type: "INT64" },
  bool: { type: "BOOLEAN" },
  string: { type: "BYTE_ARRAY", converted_type: "UTF8" },
  bytes: { type: "BYTE_ARRAY" },
};

/** The Parquet schema of an export: the types `import` maps back to the same features. */
function parquetSchema({ key, eventTime, features }: ExportColumns): SchemaElement[] {
  const elements: SchemaElement[] = [
    { name: "root", num_children: 1 + (eventTime ? 1 : 0) + features.length },
    { name: key, type: "BYTE_ARRAY", converted_type: "UTF8", repetition_type: "REQUIRED" },
  ];
  if (eventTime) elements.push({ name: eventTime, type: "INT64", repetition_type: "REQUIRED" });
  for (const { name, kind } of features) {
    if (kind.type === "float32_vector") {
      // The standard three-level LIST (as pyarrow and Spark write it).
      elements.push(
        { name, repetition_type: "OPTIONAL", num_children: 1, converted_type: "LIST" },
        { name: "list", repetition_type: "REPEATED", num_children: 1 },
        { name: "element", type: "FLOAT", repetition_type: "REQUIRED" },
      );
    } else {
      elements.push({ name, ...PARQUET_SCALARS[kind.type], repetition_type: "OPTIONAL" });
    }
  }
  return elements;
}

/** Writes all of `text` (a pipe may take less than asked at a time). */
function writeAll(fd: number, text: string): void {
  const bytes = Buffer.from(text, "utf8");
  for (let done = 0; done < bytes.length;) {
    try {
      done += writeSync(fd, bytes, done, bytes.length - done);
    } catch (err) {
      // A non-blocking stdout pipe that is full: wait for the reader, then go on.
      if ((err as NodeJS.ErrnoException).code !== "EAGAIN") throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    }
  }
}
