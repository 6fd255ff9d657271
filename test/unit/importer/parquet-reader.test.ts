/**
 * Parquet import (src/importer/parquet-reader.ts): files DuckDB wrote (test/fixtures/parquet, an
 * independent writer: snappy, zstd and gzip, every feature type, nulls, int64 extremes, NaN and
 * infinities, LIST vectors, integer keys and TIMESTAMP event times) read to the exact rows; files
 * written here (hyparquet-writer) for row groups and every refusal.
 */
import { afterAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parquetWriteBuffer } from "hyparquet-writer";
import { loadTablesConfig, parseTablesConfig } from "../../../src/config/tables-config.js";
import { readParquetRows } from "../../../src/importer/parquet-reader.js";
import { ImportFileError, ImportRowError } from "../../../src/importer/errors.js";
import type { ImportRow } from "../../../src/importer/row-coercion.js";

const FIXTURES = "test/fixtures/parquet";
const NOW = 1_800_000_000_000;
// The tables of the fixtures: `users` for all-types-*.parquet, `items` for int-keys-timestamps.parquet.
const CONFIG = loadTablesConfig(join(FIXTURES, "tables.json"));
const USERS = CONFIG.tables[0]!;
const ITEMS = CONFIG.tables[1]!;

const dir = mkdtempSync(join(tmpdir(), "strata-parquet-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function readAll(path: string, schema = USERS, options = {}): Promise<ImportRow[]> {
  const rows: ImportRow[] = [];
  for await (const batch of readParquetRows(path, schema, { defaultEventTimeMs: NOW, ...options }))
    rows.push(...batch);
  return rows;
}

interface Column {
  name: string;
  data: unknown[];
  type?: string;
}

let files = 0;
/** A Parquet file of `columns` (hyparquet-writer guesses types it is not given). */
function parquet(columns: { name: string; data: unknown[]; type?: string }[], rowGroupSize?: number): string {
  const path = join(dir, `f${files++}.parquet`);
  const buffer = parquetWriteBuffer({
    columnData: columns as Parameters<typeof parquetWriteBuffer>[0]["columnData"],
    ...(rowGroupSize ? { rowGroupSize } : {}),
  });
  writeFileSync(path, new Uint8Array(buffer));
  return path;
}

describe("readParquetRows on files DuckDB wrote", () => {
  const expected: ImportRow[] = [
    {
      key: "user:1",
      eventTimeMs: 1732000000000,
      values: [
        45n,
        "DE",
        false,
        14.9,
        Math.fround(0.02186),
        new Float32Array([0.25, -0.5, 1]),
        Buffer.from("AAEC"),
      ],
    },
    {
      key: "user:2",
      eventTimeMs: 1732000000001,
      values: [null, "US", true, null, 1.5, new Float32Array([1, 2, 3]), null],
    },
    {
      key: "user:3",
      eventTimeMs: NOW,
      values: [-(2n ** 63n), 'naïve, "quoted"\nline', null, 1e300, null, null, new Uint8Array([0, 255])],
    },
    {
      key: "user:4",
      eventTimeMs: 5,
      values: [
        9007199254740993n,
        "",
        true,
        -0,
        -3.4028234663852886e38,
        new Float32Array([0, 0.1, 3.4028234663852886e38]),
        new Uint8Array(0),
      ],
    },
    {
      key: "user:5",
      eventTimeMs: 1732000000005,
      values: [7n, null, false, NaN, Infinity, new Float32Array([0, 0, 0]), null],
    },
  ];

  for (const codec of ["snappy", "zstd"]) {
    it(`reads every feature type exactly (${codec})`, async () => {
      const rows = await readAll(join(FIXTURES, `all-types-${codec}.parquet`));
      expect(rows.length).toBe(expected.length);
      rows.forEach((row, i) => {
        expect(row.key).toBe(expected[i]!.key);
        expect(row.eventTimeMs).toBe(expected[i]!.eventTimeMs);
        row.values.forEach((v, f) => {
          const want = expected[i]!.values[f];
          if (v instanceof Uint8Array && !(v instanceof Float32Array))
            expect(Buffer.from(v)).toEqual(Buffer.from(want as Uint8Array));
          else expect(v).toEqual(want);
        });
      });
      expect(Object.is(rows[3]!.values[3], -0)).toBe(true);
    });
  }

  it("writes integer keys in decimal and takes TIMESTAMP event times (gzip, DECIMAL prices)", async () => {
    const rows = await readAll(join(FIXTURES, "int-keys-timestamps.parquet"), ITEMS);
    expect(rows).toEqual([
      { key: "1", values: [0.5], eventTimeMs: 1732000001000 },
      { key: "2", values: [1], eventTimeMs: 1732000002000 },
      { key: "3", values: [1.5], eventTimeMs: 1732000003000 },
    ]);
  });
});

describe("readParquetRows", () => {
  it("reads row group after row group, in order, in batches, and says how far it is", async () => {
    const n = 2500;
    const path = parquet(
      [
        { name: "item_id", data: Array.from({ length: n }, (_, i) => `i${i}`), type: "STRING" },
        { name: "price", data: Array.from({ length: n }, (_, i) => i / 4), type: "DOUBLE" },
      ],
      1000,
    );
    const rows = readParquetRows(path, ITEMS, { defaultEventTimeMs: NOW, batchSize: 300 });
    const seen: ImportRow[] = [];
    const progress: number[] = [];
    for await (const batch of rows) {
      expect(batch.length).toBeLessThanOrEqual(300);
      seen.push(...batch);
      progress.push(rows.bytesRead);
    }
    expect(seen.map((r) => r.key)).toEqual(Array.from({ length: n }, (_, i) => `i${i}`));
    expect(seen[2499]!.values).toEqual([2499 / 4]);
    // Three row groups: progress moves at the end of each (from 0), never back, within the file.
    expect(new Set(progress).size).toBe(4);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    expect(progress.at(-1)).toBeLessThan(statSync(path).size);
  });

  const refused = async (path: string, schema = ITEMS) => {
    try {
      await readAll(path, schema);
    } catch (err) {
      return err as Error;
    }
    throw new Error("expected the file to be refused");
  };

  it("names the row and column of a bad value, or skips it to onBadRow", async () => {
    const path = parquet([
      { name: "item_id", data: ["a", "b", "c", null], type: "STRING" },
      { name: "price", data: ["1.5", "x", "2", "3"], type: "STRING" },
    ]);
    const err = await refused(path);
    expect(err).toBeInstanceOf(ImportRowError);
    expect(err.message).toBe('row 1, column "price": "1.5" is not a float64');
    const bad: string[] = [];
    const rows = await readAll(path, ITEMS, {
      onBadRow: (e: ImportRowError, raw: string) => bad.push(`${e.line} ${raw}`),
    });
    expect(rows).toEqual([]);
    expect(bad).toEqual([
      '1 {"item_id":"a","price":"1.5"}',
      '2 {"item_id":"b","price":"x"}',
      '3 {"item_id":"c","price":"2"}',
      '4 {"item_id":null,"price":"3"}',
    ]);
  });

  it("refuses values of the wrong type or range, keys that cannot be keys", async () => {
    const cases: [Column[], string][] = [
      [
        [{ name: "item_id", data: [null], type: "STRING" }],
        'row 1, column "item_id": null is not a key: the key is missing',
      ],
      [
        [{ name: "item_id", data: [""], type: "STRING" }],
        'row 1, column "item_id": "" is not a key: the key is empty',
      ],
      [
        [{ name: "item_id", data: [new Uint8Array([0xff])], type: "BYTE_ARRAY" }],
        'row 1, column "item_id": "/w==" is not a key: it is not valid UTF-8',
      ],
      [
        [{ name: "item_id", data: ["k".repeat(1025)], type: "STRING" }],
        "is 1025 UTF-8 bytes long, more than 1024",
      ],
      [
        [
          { name: "item_id", data: ["a"], type: "STRING" },
          { name: "price", data: [2n ** 60n], type: "INT64" },
        ],
        'row 1, column "price": "1152921504606846976" is not a float64',
      ],
      [
        [
          { name: "item_id", data: ["a"], type: "STRING" },
          { name: "event_time_ms", data: [-1n], type: "INT64" },
        ],
        'row 1, column "event_time_ms": "-1" is not an event time',
      ],
    ];
    for (const [columns, message] of cases) {
      const err = await refused(parquet(columns));
      expect(err).toBeInstanceOf(ImportRowError);
      expect(err.message).toContain(message);
    }
    const vectors = parseTablesConfig({
      tables: [
        {
          name: "v",
          key: "id",
          features: [
            { name: "emb", type: "float32[2]" },
            { name: "s", type: "string" },
            { name: "n", type: "int64" },
          ],
        },
      ],
    }).tables[0]!;
    const vectorCases: [Column[], string][] = [
      [
        [{ name: "emb", data: [[1, 2, 3]] }],
        'column "emb": [1,2,3] is not a float32[2]: has 3 elements, expected 2',
      ],
      [[{ name: "emb", data: [[1, "x"]] }], "element 2 is not a number"],
      [[{ name: "emb", data: [[1, 1e39]] }], "element 2 is out of the float32 range"],
      [
        [{ name: "s", data: [new Uint8Array([0xc3])], type: "BYTE_ARRAY" }],
        'column "s": "ww==" is not a string: it is not valid UTF-8',
      ],
      [[{ name: "n", data: [1.5], type: "DOUBLE" }], 'column "n": 1.5 is not an int64'],
    ];
    for (const [columns, message] of vectorCases) {
      const err = await refused(parquet([{ name: "id", data: ["k"], type: "STRING" }, ...columns]), vectors);
      expect(err).toBeInstanceOf(ImportRowError);
      expect(err.message).toContain(message);
    }
  });

  it("refuses a file whose columns are not the table's, or that is not Parquet", async () => {
    const unknown = await refused(
      parquet([
        { name: "item_id", data: ["a"], type: "STRING" },
        { name: "prize", data: [1], type: "DOUBLE" },
      ]),
    );
    expect(unknown).toBeInstanceOf(ImportFileError);
    expect(unknown.message).toMatch(/column "prize" is not in table "items".*"price"/);
    // pandas' index column is not data.
    const indexed = parquet([
      { name: "item_id", data: ["a"], type: "STRING" },
      { name: "__index_level_0__", data: [7n], type: "INT64" },
    ]);
    expect(await readAll(indexed, ITEMS)).toEqual([{ key: "a", values: [null], eventTimeMs: NOW }]);
    const keyless = await refused(parquet([{ name: "price", data: [1], type: "DOUBLE" }]));
    expect(keyless.message).toBe('the file has no key column "item_id"');
    const text = join(dir, "not.parquet");
    writeFileSync(text, "item_id,price\na,1\n");
    const notParquet = await refused(text);
    expect(notParquet).toBeInstanceOf(ImportFileError);
    expect(notParquet.message).toMatch(/^Cannot read ".*not.parquet" as Parquet/);
  });
});
