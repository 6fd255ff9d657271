/**
 * The addon's CSV loop (native/csv_encode.cc, importer/native-lines.ts) against its JS reference
 * (CsvRowCoercer.tryLineInto): random files of every kind, good and bad lines, encoded both ways
 * into segment parts must give the same bytes, the same bad-row reports and the same errors.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { rowLayout } from "../../../src/format/row-layout.js";
import { schemaHash, type TableSchema } from "../../../src/format/schema.js";
import {
  DEFAULT_HASH_SEED,
  ENCODE_INTO,
  MemorySegmentSink,
  SegmentEncoder,
  type RecordBatch,
  type RecordTarget,
  type RowContent,
} from "../../../src/format/segment-encoder.js";
import { PartedRecords } from "../../../src/storage/segment-file-writer.js";
import { ImportRowError } from "../../../src/importer/errors.js";
import { readImportRows, type ReadImportOptions } from "../../../src/importer/import-reader.js";
import { NativeLines } from "../../../src/importer/native-lines.js";
import { CsvRowCoercer } from "../../../src/importer/row-coercion.js";
import { encodeCsvLines } from "../../../src/storage/native.js";
import { DEFAULT_TIME, EVERY_TYPE, chunked, expectSameSegment, schemaOf } from "./helpers.js";

const SCHEMA = schemaOf([...EVERY_TYPE.features, { name: "note", type: "string" }]);
const COLUMNS = [...SCHEMA.features.map((f) => f.name), "id", "event_time_ms"];

/** Counts the records typed in JS (by tryLineInto: commit; from row objects: add); the rest were typed natively. */
class CountingTarget implements RecordTarget {
  commits = 0;
  adds = 0;
  constructor(private readonly inner: RecordTarget) {}
  reserve(maxLength: number): number {
    return this.inner.reserve(maxLength);
  }
  get bytes(): Buffer {
    return this.inner.bytes;
  }
  get floats(): Float32Array {
    return this.inner.floats;
  }
  get doubles(): Float64Array {
    return this.inner.doubles;
  }
  get words(): Int32Array {
    return this.inner.words;
  }
  commit(at: number, keyLen: number, valueLen: number, eventTimeMs: number): void {
    this.commits++;
    this.inner.commit(at, keyLen, valueLen, eventTimeMs);
  }
  add(key: string | Buffer, eventTimeMs: number, values: RowContent | null): void {
    this.adds++;
    this.inner.add(key, eventTimeMs, values);
  }
  openBatch(): RecordBatch {
    return this.inner.openBatch();
  }
  closeBatch(): void {
    this.inner.closeBatch();
  }
}

type Encoded = {
  parts: Buffer[];
  bad: string[];
  error: string | null;
  records: number;
  /** Records typed by tryLineInto. */
  commits: number;
  /** Records typed natively. */
  natively: number;
};

/** Encodes `data` into parts of at most `maxBytes` (estimated), natively or with the JS reference only. */
async function encodeParts(
  data: Buffer,
  schema: TableSchema,
  native: boolean,
  opts: { sizes: number[]; maxBytes: number; skipBad: boolean; defaultEventTimeMs?: number },
): Promise<Encoded> {
  const layout = rowLayout(schema);
  let n = 0;
  const sinks: MemorySegmentSink[] = [];
  const encoders: SegmentEncoder[] = [];
  const newPart = (): SegmentEncoder => {
    const sink = new MemorySegmentSink();
    const encoder = new SegmentEncoder(sink, {
      kind: "base",
      tableName: "t",
      schemaHash: schemaHash(schema),
      layout,
      segmentUuid: (n++).toString(16).padStart(8, "0") + "89abcdef0123456789abcdef",
      hashSeed: DEFAULT_HASH_SEED,
    });
    sinks.push(sink);
    encoders.push(encoder);
    return encoder;
  };
  const target = new CountingTarget(new PartedRecords(newPart(), opts.maxBytes, newPart));
  const bad: string[] = [];
  const options: ReadImportOptions = {
    defaultEventTimeMs: opts.defaultEventTimeMs ?? DEFAULT_TIME,
    csvNative: native,
    ...(opts.skipBad ? { onBadRow: (e, raw) => bad.push(`${e.message} | ${raw}`) } : {}),
  };
  let error: string | null = null;
  try {
    await readImportRows(chunked(data, opts.sizes), "csv", schema, options)[ENCODE_INTO](target, layout);
  } catch (err) {
    if (!(err instanceof ImportRowError)) throw err;
    error = err.message;
  }
  const parts = encoders.map((e, i) => sinks[i]!.fileBytes(e.finish()));
  const records = encoders.reduce((sum, e) => sum + e.recordCount, 0);
  return {
    parts,
    bad,
    error,
    records,
    commits: target.commits,
    natively: records - target.commits - target.adds,
  };
}

function expectSameParts(a: Encoded, b: Encoded): void {
  expect(a.error).toBe(b.error);
  expect(a.bad).toEqual(b.bad);
  expect(a.parts.length).toBe(b.parts.length);
  a.parts.forEach((p, i) => {
    const q = b.parts[i]!;
    if (!p.equals(q)) {
      let at = 0;
      while (p[at] === q[at]) at++;
      expect(`part ${i} differs at byte ${at} of ${q.length}`).toBe("identical parts");
    }
  });
}

// ---- random cells, by column: mostly values, and at a per-file rate edge cases and mistakes ----

const longDecimal = fc.stringMatching(/^-?[0-9]{1,22}\.[0-9]{1,24}$/);
const exponentForm = fc.stringMatching(/^[+-]?[0-9]{0,3}\.?[0-9]{1,20}[eE][+-]?[0-9]{1,3}$/);
const printedDouble = fc.double().map((x) => (Object.is(x, -0) ? "-0" : String(x)));
const printedFloat = fc.float().map((x) => (Object.is(x, -0) ? "-0" : String(x)));
/**
 * Halfway between a float32 and the next one, printed to 17..25 digits: where rounding the digits
 * to float32 must go through the nearest double (the short ones without an exponent, as summed).
 */
const float32Midpoint = fc
  .tuple(fc.float({ noNaN: true, min: -1e6, max: 1e6 }), fc.integer({ min: 17, max: 25 }))
  .map(([x, digits]) => {
    const f32 = new Float32Array([x, 0]);
    const bits = new Uint32Array(f32.buffer);
    bits[1] = bits[0]! + 1;
    return ((f32[0]! + f32[1]!) / 2).toPrecision(digits).replace(/e\+?/, "e");
  });
const shortDecimal = fc.integer({ min: -1e6, max: 1e6 }).map((i) => (i / 997).toFixed(Math.abs(i) % 9));
const numberEdge = fc.constantFrom(
  "NaN",
  "Infinity",
  "-Infinity",
  "+Infinity",
  "-NaN",
  "+5",
  ".5",
  "5.",
  ".",
  "-",
  "1e",
  "0x10",
  "1.2.3",
  "1e400",
  "-1e400",
  "1e-400",
  "-1e-400",
  "3.4028235e38",
  "3.4028236e38",
  "340282356779733661637539395458142568448",
  "1.17549435e-38",
  "1.4e-45",
  "4.9e-324",
  "2.2250738585072011e-308",
  "0.30000000000000004",
  "13.857142857142858",
  "9007199254740993",
  "123456789012345678901234567890",
  "0.000000000000000000000000000001",
  "00000000000000000001.5",
  "1,5",
  " 1",
  "1 ",
);
const int64Edge = fc.constantFrom(
  "9223372036854775807",
  "-9223372036854775808",
  "9223372036854775808",
  "-9223372036854775809",
  "18446744073709551615",
  "18446744073709551616",
  "99999999999999999999999",
  "000000000000000000000000042",
  "-0",
  "-",
  "1.0",
  "1e3",
  "+1",
  "123456789012345",
  "1234567890123456",
);
const textArb = fc.oneof(
  fc.string({ unit: "grapheme", maxLength: 12 }),
  fc.string({ unit: fc.constantFrom("a", ",", " ", "é", "🙂"), maxLength: 8 }),
);
const vectorOf = (x: fc.Arbitrary<string>, n: fc.Arbitrary<number>, sep: string) =>
  fc.array(x, { minLength: 5, maxLength: 5 }).chain((xs) => n.map((k) => `"[${xs.slice(0, k).join(sep)}]"`));

/** Per column: [values, edge cases and mistakes]. */
const CELLS: Record<string, [fc.Arbitrary<string>, fc.Arbitrary<string>]> = {
  f32: [
    fc.oneof(printedFloat, shortDecimal, longDecimal, float32Midpoint),
    fc.oneof(numberEdge, exponentForm, printedDouble),
  ],
  f64: [fc.oneof(printedDouble, shortDecimal, longDecimal, exponentForm), numberEdge],
  i64: [fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String), int64Edge],
  flag: [
    fc.constantFrom("true", "TRUE", "False", "fAlSe", "1", "0"),
    fc.constantFrom("yes", "tru", "truee", "2", '"true"', "t"),
  ],
  name: [textArb, fc.string({ unit: fc.constantFrom("a", '"', "\n", "\r", ","), maxLength: 6 })],
  blob: [
    fc.uint8Array({ maxLength: 24 }).map((b) => Buffer.from(b).toString("base64")),
    fc.constantFrom("AB==", "ABC=", "A===", "AB=C", "A", "AB", "====", "QUJD", "QUJD\r", "-_8=", '"QUJD"'),
  ],
  emb: [
    fc.oneof(
      vectorOf(fc.oneof(printedFloat, shortDecimal), fc.constant(3), ","),
      vectorOf(fc.oneof(printedFloat, longDecimal, float32Midpoint), fc.constant(3), " ,\t"),
    ),
    fc.oneof(
      vectorOf(fc.oneof(numberEdge, printedDouble), fc.constant(3), ","),
      vectorOf(printedFloat, fc.integer({ min: 0, max: 5 }), ","),
      fc.constantFrom(
        "[1,2,3]",
        '"[1,2,3]"x',
        '"[1,2,3"',
        '"[1,2,3,]"',
        '"[NaN,Infinity,-Infinity]"',
        '"[1;2;3]"',
      ),
    ),
  ],
  note: [textArb, fc.constantFrom('"', "a\nb", "\r")],
  id: [
    fc.oneof(
      fc.string({ unit: fc.constantFrom("k", "é", "ß", "🙂", "1"), minLength: 1, maxLength: 6 }),
      fc.integer({ min: 0, max: 30 }).map((i) => `user:${i}`),
    ),
    fc.constantFrom("", "ü".repeat(512), "k".repeat(1024), "k".repeat(1025)),
  ],
  event_time_ms: [
    fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }).map(String),
    fc.constantFrom(
      "9007199254740991",
      "9007199254740992",
      "12345678901234567",
      "-1",
      "1.5",
      "00000000000000001",
    ),
  ],
};

/** CSV quoting: as needed, forced (0), or none at all (1), which may make the line bad. */
function quoted(cell: string, how: number): string {
  if (how === 0 || (how > 1 && /[",\r\n]/.test(cell))) return `"${cell.replaceAll('"', '""')}"`;
  return cell;
}

/** A cell: empty (null) now and then, but for the key; an edge case `noise` times in 100; odd quoting as often. */
const cellOf = (column: string, noise: number): fc.Arbitrary<string> => {
  const [good, odd] = CELLS[column]!;
  const value =
    noise === 0
      ? good
      : fc.oneof({ weight: 100 - noise, arbitrary: good }, { weight: noise, arbitrary: odd });
  return fc
    .tuple(
      column === "id" ? value : fc.option(value, { nil: null, freq: 8 }),
      fc.integer({ min: 0, max: 99 }),
    )
    .map(([cell, how]) =>
      cell === null ? "" : column === "emb" ? cell : quoted(cell, how < noise ? how % 2 : 2),
    );
};

/** Puts the string and bytes columns in schema order, where they are: else rows cannot be typed into records. */
function varColumnsInOrder(columns: string[]): string[] {
  const VAR = ["name", "blob", "note"];
  const ordered = VAR.filter((c) => columns.includes(c));
  let k = 0;
  return columns.map((c) => (VAR.includes(c) ? ordered[k++]! : c));
}

const fileArb = fc
  .tuple(
    fc.shuffledSubarray(COLUMNS, { minLength: 1 }).filter((c) => c.includes("id")),
    fc.integer({ min: 0, max: 4 }),
    fc.constantFrom(0, 0, 2, 10, 30),
  )
  .map(([columns, order, noise]): [string[], number] => [
    order > 0 ? varColumnsInOrder(columns) : columns,
    noise,
  ])
  .chain(([columns, noise]) =>
    fc.record({
      columns: fc.constant(columns),
      lines: fc.array(
        fc.oneof(
          {
            weight: 30,
            arbitrary: fc.tuple(...columns.map((c) => cellOf(c, noise))).map((cells) => cells.join(",")),
          },
          {
            weight: 1,
            arbitrary: fc.constantFrom("", "x", "a,b", ",".repeat(columns.length + 1), '"a\nb",1', "\uFEFFk"),
          },
        ),
        { maxLength: 30 },
      ),
      eol: fc.constantFrom("\n", "\r\n"),
      finalEol: fc.boolean(),
      sizes: fc.oneof(
        fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 4 }),
        fc.constant([65_536]).map((s) => [...s]),
      ),
      maxBytes: fc.constantFrom(2 ** 30, 2 ** 30, 13_000, 14_000),
      skipBad: fc.boolean(),
    }),
  );

describe("native CSV lines (encodeCsvLines) against tryLineInto", () => {
  it("take every plain line of a file of every kind", () => {
    const header = ["id", "f32", "f64", "i64", "flag", "name", "blob", "emb", "note", "event_time_ms"];
    const lines = [
      'user:1,1.5,0.30000000000000004,-9223372036854775808,true,"a,b",AAEC,"[0.1,13.857142857142858,-0]",é€,7',
      "üser:2,,,,,,,,,",
      'k3,NaN,-Infinity,9223372036854775807,FALSE,"",aGk=,"[ 1e-3 , NaN,Infinity ]",x,9007199254740991',
      'k4,1e-400,1e22,000000000000000000042,0,plain,,"[1,2,3]",,',
    ];
    const data = Buffer.from(lines.join("\r\n") + "\n");
    const coercer = new CsvRowCoercer(SCHEMA, header, { defaultEventTimeMs: DEFAULT_TIME });
    expect(coercer.prepareInto(rowLayout(SCHEMA))).toBe(true);
    const encoder = new SegmentEncoder(new MemorySegmentSink(), {
      kind: "base",
      tableName: "t",
      schemaHash: schemaHash(SCHEMA),
      layout: rowLayout(SCHEMA),
    });
    const native = new NativeLines(coercer.fusedColumns()!, DEFAULT_TIME);
    expect(native.take(data, 0, data.length, encoder)).toBe(4);
    expect(native.next).toBe(data.length);
    expect(encoder.recordCount).toBe(4);
    // A doubled quote is the tokeniser's: the native loop stops there, after the lines before it.
    const withQuote = Buffer.from(lines[0] + "\n" + 'k5,1,1,1,1,"a""b",,,,\n' + lines[1] + "\n");
    expect(native.take(withQuote, 0, withQuote.length, encoder)).toBe(1);
    expect(native.next).toBe(Buffer.byteLength(lines[0]!) + 1);
  });

  it("write the same parts, bad rows and errors as the JS path, on random files (property)", async () => {
    let jsFused = 0;
    let nativeMissed = 0;
    let records = 0;
    let natively = 0;
    await fc.assert(
      fc.asyncProperty(fileArb, async (f) => {
        const data = Buffer.from(
          [f.columns.join(","), ...f.lines].join(f.eol) + (f.finalEol ? f.eol : ""),
          "utf8",
        );
        const opts = { sizes: f.sizes, maxBytes: f.maxBytes, skipBad: f.skipBad };
        const native = await encodeParts(data, SCHEMA, true, opts);
        const js = await encodeParts(data, SCHEMA, false, opts);
        expectSameParts(native, js);
        jsFused += js.commits;
        nativeMissed += native.commits;
        records += native.records;
        natively += native.natively;
      }),
      { numRuns: 600 },
    );
    // The lines tryLineInto types were typed natively, but for one after each flush or new part
    // (where reserve has work to do): the comparison above is not between two JS runs.
    expect(natively).toBeGreaterThan(records / 3);
    expect(nativeMissed).toBeLessThan(jsFused / 10);
  });

  it("agree with the tokenising path on the same random files", async () => {
    await fc.assert(
      fc.asyncProperty(fileArb, async (f) => {
        const data = [f.columns.join(","), ...f.lines].join(f.eol) + (f.finalEol ? f.eol : "");
        await expectSameSegment(data, SCHEMA, f.skipBad ? { onBadRow: () => {} } : {}, f.sizes);
      }),
      { numRuns: 200 },
    );
  });

  it("take nothing from random bytes that JS would not, and never read or write out of bounds", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 600 }),
        fc.array(fc.integer({ min: 1, max: 100 }), { minLength: 1, maxLength: 3 }),
        async (noise, sizes) => {
          const header = "id,f32,emb,name,i64,blob\n";
          const data = Buffer.concat([Buffer.from(header), Buffer.from(noise)]);
          const opts = { sizes, maxBytes: 2 ** 30, skipBad: true };
          expectSameParts(
            await encodeParts(data, SCHEMA, true, opts),
            await encodeParts(data, SCHEMA, false, opts),
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it("keep the key-first and key-elsewhere layouts, long lines and the 16 KiB line bound the same", async () => {
    const long = "x".repeat(16 * 1024);
    for (const columns of [
      ["id", "name", "note"],
      ["name", "id", "note"],
    ]) {
      const lines = [`k1,${long.slice(0, 100)},b`, `k2,${long},b`, `k3,${long.slice(0, 16_370)},b`, `k4,a,b`];
      const data = Buffer.from(
        [columns.join(","), ...lines.map((l) => reorder(l, columns))].join("\n") + "\n",
      );
      const opts = { sizes: [70_000], maxBytes: 2 ** 30, skipBad: false };
      const native = await encodeParts(data, SCHEMA, true, opts);
      expectSameParts(native, await encodeParts(data, SCHEMA, false, opts));
      expect(native.records).toBe(4);
    }
  });

  it("leave rows with an event time that is not a safe integer to the JS path", async () => {
    const data = Buffer.from("id,f32\nk,1\n");
    const opts = { sizes: [100], maxBytes: 2 ** 30, skipBad: false, defaultEventTimeMs: 2 ** 60 };
    await expect(encodeParts(data, SCHEMA, false, opts)).rejects.toThrow(
      /Event time .* is not an integer ms/,
    );
    await expect(encodeParts(data, SCHEMA, true, opts)).rejects.toThrow(/Event time .* is not an integer ms/);
  });
});

/** Puts the line's cells (written for id,name,note) in the order of `columns`. */
function reorder(line: string, columns: string[]): string {
  const [id, name, note] = line.split(",");
  const cell: Record<string, string> = { id: id!, name: name!, note: note! };
  return columns.map((c) => cell[c]!).join(",");
}

describe("encodeCsvLines refuses bad arguments", () => {
  const coercer = new CsvRowCoercer(SCHEMA, ["id", "f32"], { defaultEventTimeMs: 0 });
  coercer.prepareInto(rowLayout(SCHEMA));
  const encoder = () =>
    new SegmentEncoder(new MemorySegmentSink(), {
      kind: "base",
      tableName: "t",
      schemaHash: schemaHash(SCHEMA),
      layout: rowLayout(SCHEMA),
    });
  const src = Buffer.from("k,1\n");
  const call = (mutate: (args: Parameters<typeof encodeCsvLines>) => void) => {
    const native = new NativeLines(coercer.fusedColumns()!, 0);
    const plan = (native as unknown as { plan: Int32Array }).plan.slice();
    const batch = encoder().openBatch();
    const args: Parameters<typeof encodeCsvLines> = [
      plan,
      new Float64Array(3),
      src,
      0,
      src.length,
      batch.bytes,
      batch.state.slice(),
      batch.entries,
      batch.eventTimes,
    ];
    mutate(args);
    return () => encodeCsvLines(...args);
  };

  it("takes a good call", () => {
    expect(call(() => {})()).toBe(1);
  });

  it.each([
    ["a limit past the source", (a: Parameters<typeof encodeCsvLines>) => (a[4] = 5)],
    ["a start past the limit", (a: Parameters<typeof encodeCsvLines>) => (a[3] = 5)],
    ["a chunk end past the bytes", (a: Parameters<typeof encodeCsvLines>) => (a[6][1] = a[5].length + 8)],
    ["an unaligned write position", (a: Parameters<typeof encodeCsvLines>) => (a[6][0] = 3)],
    ["a count past the entries", (a: Parameters<typeof encodeCsvLines>) => (a[6][5] = a[7].length)],
    ["a slot past the row", (a: Parameters<typeof encodeCsvLines>) => (a[0][8 + 4 + 2] = 1 << 20)],
    ["a feature past the schema", (a: Parameters<typeof encodeCsvLines>) => (a[0][8 + 4 + 1] = 99)],
    ["no key column", (a: Parameters<typeof encodeCsvLines>) => (a[0][8] = 0)],
    ["a short reserve", (a: Parameters<typeof encodeCsvLines>) => (a[0][5] = 100)],
    ["a truncated plan", (a: Parameters<typeof encodeCsvLines>) => (a[0] = a[0].subarray(0, 9))],
    ["a wrong type", (a: Parameters<typeof encodeCsvLines>) => ((a as unknown[])[2] = "k,1\n")],
  ])("refuses %s", (_what, mutate) => {
    expect(call(mutate)).toThrow(TypeError);
  });
});
