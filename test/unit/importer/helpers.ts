import { expect } from "vitest";
import type { FeatureSpec, FeatureValue, TableSchema } from "../../../src/format/schema.js";
import { ImportRowError } from "../../../src/importer/errors.js";
import { readImportRows, type ReadImportOptions } from "../../../src/importer/import-reader.js";
import type { ImportRow } from "../../../src/importer/row-coercion.js";
import { rowLayout } from "../../../src/format/row-layout.js";
import { schemaHash } from "../../../src/format/schema.js";
import {
  DEFAULT_HASH_SEED,
  ENCODE_INTO,
  MemorySegmentSink,
  SegmentEncoder,
  encodeSegment,
} from "../../../src/format/segment-encoder.js";

export const DEFAULT_TIME = 1_700_000_000_000;

export function schemaOf(features: FeatureSpec[], key = "id"): TableSchema {
  return { name: "t", key, topic: "strata.deltas.t", maxAgeMs: 0, features };
}

/** A table with one feature of every type, keyed by `id`. */
export const EVERY_TYPE = schemaOf([
  { name: "f32", type: "float32" },
  { name: "f64", type: "float64" },
  { name: "i64", type: "int64" },
  { name: "flag", type: "bool" },
  { name: "name", type: "string" },
  { name: "blob", type: "bytes" },
  { name: "emb", type: "float32[3]" },
]);

/** The stream a file would give, cut into chunks of the given sizes (cycled). */
export async function* chunked(data: Buffer | string, sizes: number[] = [65_536]): AsyncGenerator<Buffer> {
  const buf = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  let off = 0;
  let i = 0;
  while (off < buf.length) {
    const n = Math.max(1, sizes[i++ % sizes.length]!);
    yield buf.subarray(off, off + n);
    off += n;
  }
}

export async function readAll(
  data: Buffer | string,
  format: "csv" | "jsonl",
  schema: TableSchema,
  options: Partial<ReadImportOptions> = {},
  sizes?: number[],
): Promise<ImportRow[]> {
  const rows: ImportRow[] = [];
  for await (const batch of readImportRows(chunked(data, sizes), format, schema, {
    defaultEventTimeMs: DEFAULT_TIME,
    ...options,
  })) {
    rows.push(...batch);
  }
  return rows;
}

export type Outcome = { rows: ImportRow[] } | { error: ImportRowError };

async function outcome(p: Promise<ImportRow[]>): Promise<Outcome> {
  try {
    return { rows: await p };
  } catch (err) {
    if (err instanceof ImportRowError) return { error: err };
    throw err;
  }
}

/**
 * Reads CSV with the fast path and without it, whole and one byte at a time, and checks that all
 * four agree (rows, or the error's message); returns the outcome.
 */
export async function readCsvEverywhere(
  text: string | Buffer,
  schema: TableSchema,
  options: Partial<ReadImportOptions> = {},
): Promise<Outcome> {
  const variants = await Promise.all([
    outcome(readAll(text, "csv", schema, options)),
    outcome(readAll(text, "csv", schema, { ...options, csvFastPath: false })),
    outcome(readAll(text, "csv", schema, options, [1])),
    outcome(readAll(text, "csv", schema, { ...options, csvFastPath: false }, [3])),
  ]);
  const first = variants[0]!;
  for (const v of variants.slice(1)) {
    if ("error" in first) {
      expect("error" in v ? v.error.message : "rows").toBe(first.error.message);
    } else {
      expect("rows" in v).toBe(true);
      if ("rows" in v) expectRowsEqual(v.rows, first.rows);
    }
  }
  return first;
}

export async function csvRows(text: string, schema: TableSchema, options: Partial<ReadImportOptions> = {}) {
  const o = await readCsvEverywhere(text, schema, options);
  if ("error" in o) throw o.error;
  return o.rows;
}

export async function csvError(
  text: string | Buffer,
  schema: TableSchema,
  options: Partial<ReadImportOptions> = {},
) {
  const o = await readCsvEverywhere(text, schema, options);
  if ("rows" in o) throw new Error(`expected an error, got ${o.rows.length} rows`);
  return o.error;
}

export async function jsonlError(
  text: string,
  schema: TableSchema,
  options: Partial<ReadImportOptions> = {},
) {
  try {
    await readAll(text, "jsonl", schema, options);
  } catch (err) {
    expect(err).toBeInstanceOf(ImportRowError);
    return err as ImportRowError;
  }
  throw new Error("expected an error");
}

/** Same value: Object.is for numbers (NaN, -0), element-wise for arrays. */
export function sameValue(a: FeatureValue, b: FeatureValue): boolean {
  if (a instanceof Float32Array || b instanceof Float32Array) {
    if (!(a instanceof Float32Array) || !(b instanceof Float32Array) || a.length !== b.length) return false;
    return a.every((x, i) => Object.is(x, b[i]));
  }
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    if (!(a instanceof Uint8Array) || !(b instanceof Uint8Array)) return false;
    return Buffer.from(a).equals(Buffer.from(b));
  }
  return Object.is(a, b);
}

export function show(v: FeatureValue): string {
  if (v instanceof Float32Array)
    return `Float32Array[${Array.from(v, (x) => (Object.is(x, -0) ? "-0" : String(x))).join(",")}]`;
  if (v instanceof Uint8Array) return `bytes(${Buffer.from(v).toString("hex")})`;
  if (typeof v === "bigint") return `${v}n`;
  if (typeof v === "number") return Object.is(v, -0) ? "-0" : String(v);
  return JSON.stringify(v) ?? String(v);
}

export function expectRowsEqual(actual: ImportRow[], expected: ImportRow[]): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((row, i) => {
    const exp = expected[i]!;
    expect(row.key).toBe(exp.key);
    expect(row.eventTimeMs).toBe(exp.eventTimeMs);
    expect(row.values.length).toBe(exp.values.length);
    row.values.forEach((v, f) => {
      if (!sameValue(v, exp.values[f]!)) {
        expect(`row ${i} value ${f}: ${show(v)}`).toBe(`row ${i} value ${f}: ${show(exp.values[f]!)}`);
      }
    });
  });
}

/**
 * Encodes CSV into a segment twice: rows typed straight into records (ENCODE_INTO, what imports
 * use) and rows from the tokenising path through `encodeSegment`. The files must be identical, and
 * so must the bad rows reported or the error thrown. Returns the file.
 */
export async function expectSameSegment(
  data: string | Buffer,
  schema: TableSchema,
  options: Partial<ReadImportOptions> = {},
  sizes?: number[],
): Promise<Buffer | ImportRowError> {
  const layout = rowLayout(schema);
  const encoderOptions = {
    kind: "base" as const,
    tableName: "t",
    schemaHash: schemaHash(schema),
    layout,
    segmentUuid: "0123456789abcdef0123456789abcdef",
    hashSeed: DEFAULT_HASH_SEED,
  };
  type Run = { file: Buffer; bad: string[] } | { error: ImportRowError; bad: string[] };
  const run = async (fused: boolean): Promise<Run> => {
    const bad: string[] = [];
    const opts: ReadImportOptions = {
      defaultEventTimeMs: DEFAULT_TIME,
      ...options,
      ...(options.onBadRow ? { onBadRow: (e, raw) => bad.push(`${e.message} | ${raw}`) } : {}),
    };
    try {
      if (fused) {
        const sink = new MemorySegmentSink();
        const encoder = new SegmentEncoder(sink, encoderOptions);
        await readImportRows(chunked(data, sizes), "csv", schema, opts)[ENCODE_INTO](encoder, layout);
        return { file: sink.fileBytes(encoder.finish()), bad };
      }
      const rows: ImportRow[] = [];
      for await (const batch of readImportRows(chunked(data, sizes), "csv", schema, {
        ...opts,
        csvFastPath: false,
      }))
        rows.push(...batch);
      return { file: encodeSegment(encoderOptions, rows).bytes, bad };
    } catch (err) {
      if (err instanceof ImportRowError) return { error: err, bad };
      throw err;
    }
  };
  const a = await run(true);
  const b = await run(false);
  expect(a.bad).toEqual(b.bad);
  if ("error" in b) {
    expect("error" in a ? a.error.message : "no error").toBe(b.error.message);
    return b.error;
  }
  if (!("file" in a)) throw a.error;
  const fa = a.file;
  if (!fa.equals(b.file)) {
    let i = 0;
    while (fa[i] === b.file[i]) i++;
    expect(`files differ at byte ${i} of ${b.file.length}`).toBe("identical files");
  }
  return b.file;
}
