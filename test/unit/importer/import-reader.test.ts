import { describe, expect, it } from "vitest";
import fc from "fast-check";
import type { FeatureValue } from "../../../src/format/schema.js";
import { ImportFileError, ImportRowError } from "../../../src/importer/errors.js";
import { detectImportFormat, readImportRows } from "../../../src/importer/import-reader.js";
import type { ImportRow } from "../../../src/importer/row-coercion.js";
import {
  DEFAULT_TIME,
  EVERY_TYPE,
  chunked,
  expectRowsEqual,
  expectSameSegment,
  readAll,
  readCsvEverywhere,
  schemaOf,
} from "./helpers.js";

const SCHEMA = EVERY_TYPE;
const FEATURES = SCHEMA.features.map((f) => f.name);

describe("detectImportFormat", () => {
  it("goes by the extension", () => {
    expect(detectImportFormat("/data/users.csv")).toBe("csv");
    expect(detectImportFormat("USERS.CSV")).toBe("csv");
    expect(detectImportFormat("a.jsonl")).toBe("jsonl");
    expect(detectImportFormat("a.b.ndjson")).toBe("jsonl");
    expect(detectImportFormat("part-00000.snappy.parquet")).toBe("parquet");
    expect(detectImportFormat("a.PQ")).toBe("parquet");
    expect(detectImportFormat("users.csv.gz")).toBe("csv");
    expect(detectImportFormat("users.ndjson.GZ")).toBe("jsonl");
  });

  it("refuses anything else", () => {
    for (const path of ["a.json", "a.parquet.gz", "a", "csv", "-"]) {
      expect(() => detectImportFormat(path)).toThrow(ImportFileError);
    }
    try {
      detectImportFormat("x.tsv");
    } catch (err) {
      expect((err as ImportFileError).code).toBe("STRATA_IMPORT_INVALID");
      expect((err as Error).message).toMatch(
        /"x.tsv".*\.csv, \.jsonl, \.ndjson \(or any of them \.gz\), \.parquet or \.pq/,
      );
    }
  });
});

describe("readImportRows", () => {
  const csv = (n: number) => "id,i64\n" + Array.from({ length: n }, (_, i) => `k${i},${i}`).join("\n") + "\n";

  it("yields batches of batchSize rows, the last one shorter", async () => {
    const sizes: number[] = [];
    const keys: string[] = [];
    for await (const batch of readImportRows(chunked(csv(2500), [777]), "csv", SCHEMA, {
      defaultEventTimeMs: 0,
      batchSize: 1000,
    })) {
      sizes.push(batch.length);
      keys.push(...batch.map((r) => r.key));
    }
    expect(sizes).toEqual([1000, 1000, 500]);
    expect(keys).toEqual(Array.from({ length: 2500 }, (_, i) => `k${i}`));
  });

  it("defaults to batches of 1024", async () => {
    const sizes: number[] = [];
    for await (const batch of readImportRows(chunked(csv(3000)), "csv", SCHEMA, { defaultEventTimeMs: 0 })) {
      sizes.push(batch.length);
    }
    expect(sizes).toEqual([1024, 1024, 952]);
  });

  it("pulls the stream lazily, and parses a huge chunk piece by piece", async () => {
    let pulled = 0;
    async function* source() {
      for (let i = 0; i < 1000; i++) {
        pulled++;
        yield Buffer.from(i === 0 ? csv(10_000) : "");
      }
    }
    const it1 = readImportRows(source(), "csv", SCHEMA, { defaultEventTimeMs: 0, batchSize: 100 });
    const first = await it1.next();
    expect(first.done).toBe(false);
    expect(pulled).toBe(1);
    await it1.return(undefined);

    // One 10 MB chunk with a bad row at its end: the first batch comes before that row is seen.
    const big = csv(800_000) + "bad,x\n";
    const bad: number[] = [];
    let rows = 0;
    for await (const batch of readImportRows(chunked(big, [big.length]), "csv", SCHEMA, {
      defaultEventTimeMs: 0,
      onBadRow: (err) => bad.push(err.line),
    })) {
      rows += batch.length;
      break;
    }
    expect(rows).toBe(1024);
    expect(bad).toEqual([]);
  });

  it("closes the source when the caller stops early", async () => {
    let closed = false;
    async function* source() {
      try {
        for (let i = 0; i < 100; i++) yield Buffer.from(i === 0 ? "id\n" : `k${i}\n`);
      } finally {
        closed = true;
      }
    }
    for await (const batch of readImportRows(source(), "csv", SCHEMA, {
      defaultEventTimeMs: 0,
      batchSize: 1,
    })) {
      expect(batch.length).toBe(1);
      break;
    }
    expect(closed).toBe(true);
  });

  it("accepts string chunks", async () => {
    async function* source() {
      yield "id,name\nk1,é";
      yield "\nk2,x\n";
    }
    const rows: ImportRow[] = [];
    for await (const batch of readImportRows(source(), "csv", SCHEMA, { defaultEventTimeMs: 0 }))
      rows.push(...batch);
    expect(rows.map((r) => [r.key, r.values[4]])).toEqual([
      ["k1", "é"],
      ["k2", "x"],
    ]);
  });

  it("refuses an unknown format", async () => {
    const it1 = readImportRows(chunked("x"), "tsv" as never, SCHEMA, { defaultEventTimeMs: 0 });
    await expect(it1.next()).rejects.toThrow(ImportFileError);
  });

  it("throws the first bad row without onBadRow", async () => {
    await expect(readAll("id,i64\na,1\nb,x\nc,y\n", "csv", SCHEMA)).rejects.toThrow(
      'line 3, column 2 ("i64"): "x" is not an int64',
    );
    await expect(readAll('{"id":"a"}\n{"id":"b","i64":"x"}\n', "jsonl", SCHEMA)).rejects.toThrow(
      'line 2, field "i64": "x" is not an int64',
    );
  });

  it("with onBadRow, reports each bad row with its line and skips it (CSV)", async () => {
    const text = [
      "id,i64,emb",
      "a,1,",
      "b,x,", // bad value
      'c,2,"[1,2]"', // bad vector
      'd,"3', // a quote open across the line end takes in the next line (RFC 4180)
      'e,4,"[1,2,3]"',
      "f,5", // too few fields
      'g,6,""x', // text after a closing quote
      ",7,", // empty key
      "h,8,",
    ].join("\n");
    for (const csvFastPath of [true, false]) {
      for (const sizes of [[1], [5], [1 << 16]]) {
        const bad: [number, number | null, string][] = [];
        const rows = await readAll(
          text,
          "csv",
          SCHEMA,
          { csvFastPath, onBadRow: (err, raw) => bad.push([err.line, err.column, raw]) },
          sizes,
        );
        expect(rows.map((r) => r.key)).toEqual(["a", "h"]);
        expect(bad).toEqual([
          [3, 2, "b,x,"],
          [4, 3, 'c,2,"[1,2]"'],
          [6, 2, 'd,"3\ne,4,"[1,2,3]"'], // the quoted field ends at e,4," and "[" follows
          [7, null, "f,5"],
          [8, 3, 'g,6,""x'],
          [9, 1, ",7,"],
        ]);
      }
    }
  });

  it("with onBadRow, still throws a bad header", async () => {
    const bad: ImportRowError[] = [];
    await expect(
      readAll("id,nope\na,1\n", "csv", SCHEMA, { onBadRow: (err) => bad.push(err) }),
    ).rejects.toThrow(/unknown column "nope"/);
    await expect(
      readAll('id,"i64\na,1\n', "csv", SCHEMA, { onBadRow: (err) => bad.push(err) }),
    ).rejects.toThrow(/unterminated quoted field/);
    await expect(readAll('i"d\na\n', "csv", SCHEMA, { onBadRow: (err) => bad.push(err) })).rejects.toThrow(
      /a quote inside an unquoted field/,
    );
    expect(bad).toEqual([]);
  });

  it("with onBadRow, reports each bad row with its line and skips it (JSONL)", async () => {
    const text = ['{"id":"a"}', "{oops", '{"id":"b","i64":1.5}', "", '{"id":"c","zzz":1}', '{"id":"d"}'].join(
      "\n",
    );
    const bad: [number, string | null, string][] = [];
    const rows = await readAll(text, "jsonl", SCHEMA, {
      onBadRow: (err, raw) => bad.push([err.line, err.field, raw]),
    });
    expect(rows.map((r) => r.key)).toEqual(["a", "d"]);
    expect(bad).toEqual([
      [2, null, "{oops"],
      [3, "i64", '{"id":"b","i64":1.5}'],
      [5, "zzz", '{"id":"c","zzz":1}'],
    ]);
  });
});

// ---------------------------------------------------------------------------------------------
// Round trips: random rows written as CSV (with proper quoting) or JSONL, read back in random
// chunks, give the same values.

const float32 = fc.float();
const float64 = fc.double();
const int64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
const text = fc.oneof(
  fc.string({ unit: "binary", maxLength: 30 }),
  fc.string({ unit: fc.constantFrom("a", ",", '"', "\n", "\r", " ", "é"), maxLength: 10 }),
);
const key = fc
  .oneof(
    fc.string({ unit: "binary", minLength: 1, maxLength: 40 }),
    fc.string({ unit: fc.constantFrom("k", ",", '"', "\n", "\r\n", " ", "ü"), minLength: 1, maxLength: 10 }),
  )
  .filter((k) => Buffer.byteLength(k) <= 1024);
const rowArb = fc.record({
  key,
  values: fc.tuple(
    fc.option(float32, { nil: null }),
    fc.option(float64, { nil: null }),
    fc.option(int64, { nil: null }),
    fc.option(fc.boolean(), { nil: null }),
    fc.option(text, { nil: null }),
    fc.option(fc.uint8Array({ maxLength: 20 }), { nil: null }),
    fc.option(fc.array(float32, { minLength: 3, maxLength: 3 }), { nil: null }),
  ),
  eventTimeMs: fc.option(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), { nil: null }),
});
type RandomRow = typeof rowArb extends fc.Arbitrary<infer T> ? T : never;

function num(x: number): string {
  return Object.is(x, -0) ? "-0" : String(x);
}

function csvCell(v: unknown, f: number, style: number): string | null {
  if (v === null) return null;
  switch (f) {
    case 0:
    case 1:
      return num(v as number);
    case 2:
      return String(v);
    case 3:
      return [String(v), v ? "1" : "0", v ? "TRUE" : "False"][style % 3]!;
    case 4:
      return v as string;
    case 5:
      return Buffer.from(v as Uint8Array).toString("base64");
    default:
      return `[${(v as number[]).map(num).join(style % 2 ? ", " : ",")}]`;
  }
}

function quote(cell: string | null, force: boolean): string {
  if (cell === null) return "";
  if (force || cell === "" || /[",\r\n]/.test(cell)) return `"${cell.replaceAll('"', '""')}"`;
  return cell;
}

function expected(rows: RandomRow[], present: boolean[]): ImportRow[] {
  return rows.map((r) => ({
    key: r.key,
    eventTimeMs: r.eventTimeMs ?? DEFAULT_TIME,
    values: r.values.map((v, f): FeatureValue => {
      if (v === null || !present[f]) return null;
      if (f === 4 && v === "") return "";
      if (f === 6) return new Float32Array(v as number[]);
      return v as FeatureValue;
    }),
  }));
}

describe("round trips (property)", () => {
  it("CSV: random rows, random column order and quoting, random chunks", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(rowArb, { minLength: 0, maxLength: 12 }),
        fc
          .shuffledSubarray([...FEATURES.map((_, i) => i), -1, -2], { minLength: 0 })
          .filter((c) => c.includes(-1)),
        fc.constantFrom("\n", "\r\n"),
        fc.boolean(),
        fc.integer({ min: 0, max: 5 }),
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 6 }),
        async (rows, columns, eol, finalEol, style, sizes) => {
          // columns: feature indexes, -1 = key, -2 = event time.
          const header = columns.map((c) => (c === -1 ? "id" : c === -2 ? "event_time_ms" : FEATURES[c]!));
          const lines = [header.map((h) => quote(h, style === 5)).join(",")];
          for (const r of rows) {
            const cells = columns.map((c, j) => {
              const cell =
                c === -1
                  ? r.key
                  : c === -2
                    ? r.eventTimeMs === null
                      ? null
                      : String(r.eventTimeMs)
                    : csvCell(r.values[c], c, style + j);
              return quote(cell, (style + j) % 4 === 0);
            });
            lines.push(cells.join(","));
          }
          const data = lines.join(eol) + (finalEol ? eol : "");
          const present = FEATURES.map((_, f) => columns.includes(f));
          const want = expected(
            columns.includes(-2) ? rows : rows.map((r) => ({ ...r, eventTimeMs: null })),
            present,
          );
          for (const csvFastPath of [true, false]) {
            const got = await readAll(data, "csv", SCHEMA, { csvFastPath, batchSize: 5 }, sizes);
            expectRowsEqual(got, want);
          }
          await expectSameSegment(data, SCHEMA, {}, sizes);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("JSONL: random rows, random chunks", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(rowArb, { minLength: 0, maxLength: 12 }),
        fc.constantFrom("\n", "\r\n"),
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 6 }),
        async (rows, eol, sizes) => {
          const jsonNum = (x: number) => (Number.isFinite(x) ? x : String(x));
          const lines = rows.map((r) => {
            const o: Record<string, unknown> = { id: r.key };
            r.values.forEach((v, f) => {
              if (v === null) {
                if (f % 2 === 0) o[FEATURES[f]!] = null; // null or absent
                return;
              }
              if (f <= 1) o[FEATURES[f]!] = jsonNum(v as number);
              else if (f === 2) {
                const big = v as bigint;
                o[FEATURES[f]!] =
                  big >= -(2n ** 53n) + 1n && big <= 2n ** 53n - 1n && big % 2n === 0n
                    ? Number(big)
                    : String(big);
              } else if (f === 5) o[FEATURES[f]!] = Buffer.from(v as Uint8Array).toString("base64");
              else if (f === 6) o[FEATURES[f]!] = (v as number[]).map(jsonNum);
              else o[FEATURES[f]!] = v;
            });
            if (r.eventTimeMs !== null) o.event_time_ms = r.eventTimeMs;
            return JSON.stringify(o);
          });
          const data = lines.join(eol);
          // JSON has no -0: it comes back as 0.
          const want = expected(
            rows,
            FEATURES.map(() => true),
          ).map((r) => ({
            ...r,
            values: r.values.map((v) =>
              typeof v === "number" && Object.is(v, -0)
                ? 0
                : v instanceof Float32Array
                  ? v.map((x) => (Object.is(x, -0) ? 0 : x))
                  : v,
            ),
          }));
          expectRowsEqual(await readAll(data, "jsonl", SCHEMA, { batchSize: 4 }, sizes), want);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("CSV: the fast path and the tokenising path agree on random near-valid lines", async () => {
    const cell = fc.oneof(
      fc.constantFrom(
        "",
        '""',
        "1",
        "-0",
        "1e5",
        "NaN",
        "true",
        "0",
        "x",
        "1.2.3",
        "9223372036854775808",
        "AAEC",
        "aGk=",
      ),
      fc.constantFrom(
        '"[1,2,3]"',
        '"[1, 2 ,3]"',
        "[1,2,3]",
        '"[1,2]"',
        '"[1,2,3]"x',
        '"a""b"',
        '"a\nb"',
        "é",
      ),
      fc.string({ unit: fc.constantFrom("1", ".", "-", "e", "a", '"', ",", " ", "\r"), maxLength: 6 }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(cell, { minLength: 8, maxLength: 8 }), { minLength: 1, maxLength: 6 }),
        async (rows) => {
          const header = ["id", ...FEATURES].join(",");
          const data = header + "\n" + rows.map((r) => r.join(",")).join("\n") + "\n";
          await readCsvEverywhere(data, SCHEMA);
          const collect = async (csvFastPath: boolean) => {
            const bad: string[] = [];
            const got = await readAll(data, "csv", SCHEMA, {
              csvFastPath,
              onBadRow: (e, raw) => bad.push(`${e.message} | ${raw}`),
            });
            return { got, bad };
          };
          const fast = await collect(true);
          const slow = await collect(false);
          expect(fast.bad).toEqual(slow.bad);
          expectRowsEqual(fast.got, slow.got);
          await expectSameSegment(data, SCHEMA, { onBadRow: () => {} });
          await expectSameSegment(data, SCHEMA, {}, [7]);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe("typing CSV straight into segment records", () => {
  const TWO_STRINGS = schemaOf([
    { name: "a", type: "string" },
    { name: "n", type: "int64" },
    { name: "b", type: "string" },
    { name: "v", type: "float32[2]" },
    { name: "x", type: "float64" },
    { name: "raw", type: "bytes" },
    { name: "ok", type: "bool" },
    { name: "s", type: "float32" },
  ]);
  const NAMES = TWO_STRINGS.features.map((f) => f.name);

  it("writes the same segment bytes as the rows would, any columns, nulls and numbers", async () => {
    const cell = fc.oneof(
      fc.constantFrom("", '""', "x", "é€", '"q,1"', "123456789012345", "1234567890123456", "-0", "-42"),
      fc.constantFrom("1.5", "0.1", "13.857142857142858", "0.30000000000000004", "1e3", "NaN", "-Infinity"),
      fc.constantFrom('"[1,2]"', '"[0.1,13.857142857142858]"', '"[1,2,3]"', "true", "0", "AAEC", "aGk="),
      fc.stringMatching(/^-?[0-9]{1,20}\.[0-9]{1,20}$/),
    );
    await fc.assert(
      fc.asyncProperty(
        fc
          .shuffledSubarray([...NAMES, "id", "event_time_ms"], { minLength: 1 })
          .filter((c) => c.includes("id")),
        fc.array(fc.array(cell, { minLength: 10, maxLength: 10 }), { minLength: 1, maxLength: 6 }),
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 4 }),
        async (columns, cells, sizes) => {
          const lines = cells.map((r, i) =>
            columns
              .map((c, j) => (c === "id" ? `k${i % 4}` : c === "event_time_ms" ? String(i * 7) : r[j]!))
              .join(","),
          );
          const data = columns.join(",") + "\n" + lines.join("\n") + "\n";
          await expectSameSegment(data, TWO_STRINGS, { onBadRow: () => {} }, sizes);
          await expectSameSegment(data, TWO_STRINGS);
        },
      ),
      { numRuns: 400 },
    );
  });

  it("rounds long decimals to float32 exactly as Math.fround(Number(text)), midpoints included", async () => {
    const check = async (texts: string[]) => {
      const schema = schemaOf([{ name: "v", type: `float32[${texts.length}]` }]);
      const data = `id,v\nk,"[${texts.join(",")}]"\n`;
      const rows = await readAll(data, "csv", schema);
      const want = texts.map((t) => Math.fround(Number(t)));
      expect(Array.from(rows[0]!.values[0] as Float32Array)).toEqual(want);
      await expectSameSegment(data, schema);
    };
    // Float32 midpoints, printed to 17..30 significant digits: within 2^-45 of a tie.
    const f32 = new Float32Array(2);
    const mids: string[] = [];
    for (const x of [1, 0.1, 13.857142857142858, 3.4e38, 1.17549435e-38, 16777217, 123456.789]) {
      f32[0] = x;
      const bits = new Uint32Array(f32.buffer);
      bits[1] = bits[0]! + 1;
      const mid = (f32[0] + f32[1]!) / 2;
      for (const digits of [17, 21, 25, 30]) mids.push(mid.toPrecision(digits).replace(/e\+?(-?)/, "e$1"));
      mids.push(mid.toFixed(20));
    }
    await check(mids);
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.stringMatching(/^-?[0-9]{1,16}\.[0-9]{1,16}$/), { minLength: 1, maxLength: 8 }),
        check,
      ),
      { numRuns: 300 },
    );
  });
});
