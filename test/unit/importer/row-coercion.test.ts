import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { JsonRowCoercer, MAX_KEY_BYTES, parseFloatBytes } from "../../../src/importer/row-coercion.js";
import { ImportRowError } from "../../../src/importer/errors.js";
import {
  DEFAULT_TIME,
  EVERY_TYPE,
  csvError,
  csvRows,
  expectRowsEqual,
  jsonlError,
  readAll,
  schemaOf,
  show,
} from "./helpers.js";

const ALL = EVERY_TYPE;

/** One CSV column's values → what they type to, for a single-feature schema. */
async function csvValues(type: string, cells: string[]): Promise<string[]> {
  const schema = schemaOf([{ name: "v", type: type as never }]);
  const text = "id,v\n" + cells.map((c, i) => `k${i},${c}`).join("\n") + "\n";
  const rows = await csvRows(text, schema);
  return rows.map((r) => show(r.values[0]!));
}

async function csvCellError(type: string, cell: string) {
  const schema = schemaOf([{ name: "v", type: type as never }]);
  return csvError(`id,v\nk,${cell}\n`, schema);
}

describe("CSV header", () => {
  it("maps columns by name in any order; a missing feature is null for every row", async () => {
    const rows = await csvRows("name,id,f32\nbob,k1,1.5\n,k2,\n", ALL);
    expect(rows.map((r) => r.key)).toEqual(["k1", "k2"]);
    expect(rows[0]!.values.map(show)).toEqual(["1.5", "null", "null", "null", '"bob"', "null", "null"]);
    expect(rows[1]!.values.every((v) => v === null)).toBe(true);
    expect(rows[0]!.eventTimeMs).toBe(DEFAULT_TIME);
  });

  it("rejects an unknown column, naming it", async () => {
    const err = await csvError("id,f32,nope\nk,1,2\n", ALL);
    expect([err.line, err.column, err.field]).toEqual([1, 3, "nope"]);
    expect(err.message).toMatch(
      /^line 1, column 3 \("nope"\): unknown column "nope": table "t" has key "id"/,
    );
  });

  it("rejects a header without the key column", async () => {
    const err = await csvError("f32,name\n1,x\n", ALL);
    expect([err.line, err.column]).toEqual([1, null]);
    expect(err.message).toBe('line 1: header has no key column "id" (columns: "f32", "name")');
  });

  it("rejects a repeated column", async () => {
    const err = await csvError("id,f32,f32\nk,1,2\n", ALL);
    expect([err.line, err.column]).toEqual([1, 3]);
    expect(err.reason).toMatch(/repeats column "f32"/);
  });

  it("reads an empty file as no rows (the import then refuses it unless --allow-empty), and rejects an empty header", async () => {
    expect(await csvRows("", ALL)).toEqual([]);
    expect((await csvError("\nk\n", ALL)).message).toBe("line 1: the header row is empty");
  });

  it("reads the event time column, empty meaning the default", async () => {
    const rows = await csvRows("event_time_ms,id\n1732000000000,a\n,b\n0,c\n", ALL);
    expect(rows.map((r) => r.eventTimeMs)).toEqual([1732000000000, DEFAULT_TIME, 0]);
  });

  it("takes the event time column name from the options", async () => {
    const rows = await csvRows("id,ts\na,5\n", ALL, { eventTimeField: "ts" });
    expect(rows[0]!.eventTimeMs).toBe(5);
    const err = await csvError("id,event_time_ms\na,5\n", ALL, { eventTimeField: "ts" });
    expect(err.reason).toMatch(/unknown column "event_time_ms"/);
  });

  it("treats event_time_ms as data when a feature has that name", async () => {
    const schema = schemaOf([{ name: "event_time_ms", type: "int64" }]);
    const rows = await csvRows("id,event_time_ms\na,5\n", schema);
    expect(rows[0]!.values).toEqual([5n]);
    expect(rows[0]!.eventTimeMs).toBe(DEFAULT_TIME);
  });

  it("rejects a bad event time", async () => {
    for (const cell of ["-1", "1.5", "abc", "99999999999999999"]) {
      const err = await csvError(`id,event_time_ms\na,${cell}\n`, ALL);
      expect([err.line, err.column, err.field]).toEqual([2, 2, "event_time_ms"]);
      expect(err.reason).toBe(`${JSON.stringify(cell)} is not an event time (integer milliseconds >= 0)`);
    }
  });

  it("rejects a row with the wrong number of fields", async () => {
    const err = await csvError("id,f32\na,1\nb,2,3\n", ALL);
    expect(err.message).toBe("line 3: has 3 fields, the header has 2");
    const err2 = await csvError("id,f32\na\n", ALL);
    expect(err2.message).toBe("line 2: has 1 field, the header has 2");
  });

  it("skips blank lines", async () => {
    const rows = await csvRows("id,f32\n\na,1\n\r\n\nb,2\n\n", ALL);
    expect(rows.map((r) => r.key)).toEqual(["a", "b"]);
  });
});

describe("CSV keys", () => {
  it("takes any non-empty UTF-8 key up to 1024 bytes, quoted or not", async () => {
    const long = "é".repeat(MAX_KEY_BYTES / 2);
    const escaped = "x".repeat(1022) + '"';
    const rows = await csvRows(
      `id\nuser:42\n"a,b"\n"say ""hi"""\n${long}\n"${long}"\n"${escaped.replace('"', '""')}"\n`,
      ALL,
    );
    expect(rows.map((r) => r.key)).toEqual(["user:42", "a,b", 'say "hi"', long, long, escaped]);
  });

  it("rejects an empty key", async () => {
    for (const cell of ["", '""']) {
      const err = await csvError(`f32,id\n1,${cell}\n`, ALL);
      expect(err.message).toBe('line 2, column 2 ("id"): the key is empty');
    }
  });

  it("rejects a key longer than 1024 UTF-8 bytes", async () => {
    for (const key of [
      "x".repeat(1025),
      "é".repeat(513),
      '"' + "x".repeat(1023) + '"""""',
      "😀".repeat(257),
    ]) {
      const err = await csvError(`id\n${key}\n`, ALL);
      expect([err.line, err.column]).toEqual([2, 1]);
      expect(err.reason).toMatch(/^the key is \d+ UTF-8 bytes long, more than 1024$/);
    }
  });

  it("rejects a key with invalid UTF-8", async () => {
    const err = await csvError(
      Buffer.concat([Buffer.from("id\nab"), Buffer.from([0xfe]), Buffer.from("\n")]),
      ALL,
    );
    expect(err.message).toBe('line 2, column 1 ("id"): invalid UTF-8');
  });
});

describe("CSV values", () => {
  it("float32 / float64: decimals, exponents, NaN and infinities", async () => {
    const cells = [
      "1.5",
      "-2",
      "+3.25",
      ".5",
      "5.",
      "1e3",
      "-1.5E-3",
      "NaN",
      "Infinity",
      "-Infinity",
      "-0",
      "007",
    ];
    expect(await csvValues("float64", cells)).toEqual([
      "1.5",
      "-2",
      "3.25",
      "0.5",
      "5",
      "1000",
      "-0.0015",
      "NaN",
      "Infinity",
      "-Infinity",
      "-0",
      "7",
    ]);
    expect(await csvValues("float32", ["0.1", "3.4e38", "1e-50"])).toEqual([
      String(Math.fround(0.1)),
      String(Math.fround(3.4e38)),
      "0",
    ]);
  });

  it("float64: correctly rounded, fast path or not", async () => {
    const cells = [
      "0.1",
      "123456789012345.6",
      "9007199254740993",
      "2.2250738585072011e-308",
      "1.7976931348623157e308",
      "0.000000000000000000000000001",
      "3.14159265358979323846264338327950288",
      "4.35",
      "1e22",
      "1e23",
    ];
    expect(await csvValues("float64", cells)).toEqual(cells.map((c) => show(Number(c))));
  });

  it("float: rejects what is not a decimal number", async () => {
    for (const cell of [
      "abc",
      "1.2.3",
      "0x10",
      "1e",
      "e5",
      "-",
      ".",
      "1_000",
      " 1",
      "1 ",
      "nan",
      "inf",
      "+NaN",
      "--1",
      "1,5",
    ]) {
      const quoted = cell.includes(",") || cell.startsWith(" ") || cell.endsWith(" ") ? `"${cell}"` : cell;
      const err = await csvCellError("float64", quoted);
      expect(err.message).toBe(`line 2, column 2 ("v"): ${JSON.stringify(cell)} is not a float64`);
    }
  });

  it("float: rejects a finite number beyond the type's range", async () => {
    expect((await csvCellError("float64", "1e309")).reason).toBe('"1e309" is out of the float64 range');
    expect((await csvCellError("float32", "3.5e38")).reason).toBe('"3.5e38" is out of the float32 range');
    expect((await csvCellError("float32", "-1e39")).reason).toBe('"-1e39" is out of the float32 range');
  });

  it("int64: digits with an optional minus, range-checked", async () => {
    const cells = [
      "0",
      "-0",
      "42",
      "-42",
      "007",
      "9223372036854775807",
      "-9223372036854775808",
      "123456789012",
      "1234567890123456789",
    ];
    expect(await csvValues("int64", cells)).toEqual([
      "0n",
      "0n",
      "42n",
      "-42n",
      "7n",
      "9223372036854775807n",
      "-9223372036854775808n",
      "123456789012n",
      "1234567890123456789n",
    ]);
  });

  it("int64: rejects non-integers and out-of-range values", async () => {
    for (const cell of ["abc", "1.0", "+5", "1e3", "-", "12a", "0x1F", " 1"]) {
      const err = await csvCellError("int64", cell.startsWith(" ") ? `"${cell}"` : cell);
      expect(err.message).toBe(`line 2, column 2 ("v"): ${JSON.stringify(cell)} is not an int64`);
    }
    for (const cell of ["9223372036854775808", "-9223372036854775809", "99999999999999999999999"]) {
      expect((await csvCellError("int64", cell)).reason).toBe(
        `${JSON.stringify(cell)} is out of the int64 range`,
      );
    }
  });

  it("bool: true/false in any case, 1/0", async () => {
    expect(await csvValues("bool", ["true", "FALSE", "True", "1", "0", '"true"'])).toEqual([
      "true",
      "false",
      "true",
      "true",
      "false",
      "true",
    ]);
    for (const cell of ["yes", "2", "t", "truee", "-1"]) {
      expect((await csvCellError("bool", cell)).reason).toBe(
        `${JSON.stringify(cell)} is not a bool (true, false, 1 or 0)`,
      );
    }
  });

  it("string: as is; quoted empty is the empty string, unquoted empty is null", async () => {
    expect(
      await csvValues("string", ["plain", '"with, comma"', '""', "", '"multi\nline"', "ünï", '"a ""q"""']),
    ).toEqual(['"plain"', '"with, comma"', '""', "null", '"multi\\nline"', '"ünï"', '"a \\"q\\""']);
  });

  it("bytes: strict base64", async () => {
    expect(await csvValues("bytes", ["AAEC", "aGk=", "aA==", '""', "", "+/8="])).toEqual([
      "bytes(000102)",
      "bytes(6869)",
      "bytes(68)",
      "bytes()",
      "null",
      "bytes(fbff)",
    ]);
    for (const cell of ["abc", "ab=c", "a===", "YWJj!", "YW Jj", "aGk", "-_8="]) {
      expect((await csvCellError("bytes", cell.includes(" ") ? `"${cell}"` : cell)).reason).toBe(
        `${JSON.stringify(cell)} is not valid base64`,
      );
    }
  });

  it("float32[N]: a JSON array of exactly N numbers", async () => {
    expect(
      await csvValues("float32[3]", [
        '"[0.1,0.2,0.3]"',
        '" [ 1 , -2e2 ,\t3 ] "',
        '"[NaN,Infinity,-Infinity]"',
        '"[\n1,\r\n2,3]"',
        "",
      ]),
    ).toEqual([
      show(new Float32Array([0.1, 0.2, 0.3])),
      show(new Float32Array([1, -200, 3])),
      show(new Float32Array([NaN, Infinity, -Infinity])),
      show(new Float32Array([1, 2, 3])),
      "null",
    ]);
    const bad: [string, string][] = [
      ['"[1,2]"', '[1,2]" is not a float32[3]: has 2 elements, expected 3'],
      ['"[1,2,3,4]"', "has 4 elements, expected 3"],
      ['"[]"', "has 0 elements, expected 3"],
      ['"[1,x,3]"', "element 2 is not a number"],
      ['"[1,2,3"', "the array is not closed"],
      ['"[1,2,3]x"', "text after the closing bracket"],
      ['"[1 2,3]"', 'unexpected "2" after element 1'],
      ['"[1,,3]"', "element 2 is not a number"],
      ["1", "expected a JSON array of 3 numbers such as [0.1,0.2]"],
      ['"[1,1e39,3]"', "element 2 is out of the float32 range"],
    ];
    for (const [cell, reason] of bad) {
      const err = await csvCellError("float32[3]", cell);
      expect([err.line, err.column, err.field]).toEqual([2, 2, "v"]);
      expect(err.message).toContain(reason);
    }
  });

  it("names line, column and name in the message", async () => {
    const schema = schemaOf([
      { name: "a", type: "string" },
      { name: "b", type: "string" },
      { name: "age", type: "int64" },
    ]);
    const lines = ["id,a,b,age"];
    for (let i = 2; i < 17; i++) lines.push(`k${i},x,y,${i}`);
    lines.push("k17,x,y,abc");
    const err = await csvError(lines.join("\n") + "\n", schema);
    expect(err.message).toBe('line 17, column 4 ("age"): "abc" is not an int64');
    expect(err).toBeInstanceOf(ImportRowError);
    expect(err.code).toBe("STRATA_IMPORT_INVALID");
    expect([err.line, err.column, err.field, err.reason]).toEqual([17, 4, "age", '"abc" is not an int64']);
  });

  it("cuts a long bad value in the message", async () => {
    const err = await csvCellError("int64", "9".repeat(500) + "x");
    expect(err.reason.length).toBeLessThan(120);
    expect(err.reason).toMatch(/…" is not an int64$/);
  });

  it("counts lines of multi-line records in messages", async () => {
    const err = await csvError('id,name,i64\na,"x\ny\nz",1\nb,ok,zz\n', ALL);
    expect(err.line).toBe(5);
  });
});

describe("parseFloatBytes", () => {
  it("equals Number() on every decimal string of the grammar (property)", () => {
    const digits = fc.string({ unit: fc.constantFrom("0", "1", "2", "5", "7", "9"), maxLength: 25 });
    const literal = fc
      .tuple(
        fc.constantFrom("", "-", "+"),
        digits,
        fc.option(digits, { nil: undefined }),
        fc.option(
          fc.tuple(
            fc.constantFrom("e", "E"),
            fc.constantFrom("", "-", "+"),
            fc.integer({ min: 0, max: 400 }),
          ),
          {
            nil: undefined,
          },
        ),
      )
      .map(
        ([sign, int, frac, exp]) =>
          `${sign}${int}${frac === undefined ? "" : "." + frac}${exp === undefined ? "" : exp[0] + exp[1] + exp[2]}`,
      )
      .filter((s) => /[0-9]/.test(s.split(/[eE]/)[0]!));
    fc.assert(
      fc.property(literal, (s) => {
        const got = parseFloatBytes(Buffer.from(s), 0, s.length);
        const want = Number(s);
        if (Number.isFinite(want)) expect(Object.is(got, want), `${s}: ${got} vs ${want}`).toBe(true);
        else expect(got).toBeUndefined(); // a finite literal beyond float64
      }),
      { numRuns: 3000 },
    );
  });

  it("equals Number() on the shortest form of random doubles (property)", () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (x) => {
        const s = Object.is(x, -0) ? "-0" : String(x);
        expect(Object.is(parseFloatBytes(Buffer.from(s), 0, s.length), x)).toBe(true);
        const f = x.toFixed(Math.min(20, Math.max(0, 17 - Math.floor(Math.log10(Math.abs(x) || 1)))));
        if (Number.isFinite(Number(f)) && !f.includes("e")) {
          expect(Object.is(parseFloatBytes(Buffer.from(f), 0, f.length), Number(f))).toBe(true);
        }
      }),
      { numRuns: 3000 },
    );
  });
});

describe("JSONL rows", () => {
  const line = (o: Record<string, unknown>) => JSON.stringify(o);

  it("types every kind of value", async () => {
    const text = [
      line({ id: "a", f32: 0.1, f64: 0.1, i64: 42, flag: true, name: "x", blob: "aGk=", emb: [1, 2, 3] }),
      line({ id: "b", i64: "9223372036854775807", f32: "NaN", f64: "-Infinity", emb: ["Infinity", 0, -1.5] }),
      line({ id: "c", f32: null, name: null, event_time_ms: 5 }),
      '{"id":"d","i64":-9007199254740991,"blob":"","name":""}',
    ].join("\n");
    const rows = await readAll(text, "jsonl", ALL);
    expectRowsEqual(rows, [
      {
        key: "a",
        values: [Math.fround(0.1), 0.1, 42n, true, "x", Buffer.from("hi"), new Float32Array([1, 2, 3])],
        eventTimeMs: DEFAULT_TIME,
      },
      {
        key: "b",
        values: [
          NaN,
          -Infinity,
          9223372036854775807n,
          null,
          null,
          null,
          new Float32Array([Infinity, 0, -1.5]),
        ],
        eventTimeMs: DEFAULT_TIME,
      },
      { key: "c", values: [null, null, null, null, null, null, null], eventTimeMs: 5 },
      {
        key: "d",
        values: [null, null, -9007199254740991n, null, "", new Uint8Array(0), null],
        eventTimeMs: DEFAULT_TIME,
      },
    ]);
  });

  it("rejects a bad value, naming line and field", async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ f32: "1.5" }, 'line 2, field "f32": "1.5" is not a float32'],
      [{ f64: true }, 'line 2, field "f64": true is not a float64'],
      [{ f32: 1e39 }, 'line 2, field "f32": 1e+39 is out of the float32 range'],
      [{ i64: 1.5 }, 'line 2, field "i64": 1.5 is not an int64'],
      [
        { i64: 2 ** 53 },
        'line 2, field "i64": 9007199254740992 is beyond 2^53, where JSON numbers lose digits: write it as a decimal string',
      ],
      [{ i64: "12x" }, 'line 2, field "i64": "12x" is not an int64'],
      [{ i64: "+1" }, 'line 2, field "i64": "+1" is not an int64'],
      [
        { i64: "9223372036854775808" },
        'line 2, field "i64": "9223372036854775808" is out of the int64 range',
      ],
      [{ flag: 1 }, 'line 2, field "flag": 1 is not a bool (true or false)'],
      [{ name: 5 }, 'line 2, field "name": 5 is not a string'],
      [{ name: "\ud800x" }, 'line 2, field "name": "\\ud800x" is not valid UTF-8 (a lone surrogate)'],
      [{ blob: "abc" }, 'line 2, field "blob": "abc" is not a base64 string'],
      [{ blob: [1] }, 'line 2, field "blob": [1] is not a base64 string'],
      [{ emb: [1, 2] }, 'line 2, field "emb": [1,2] is not a float32[3]: has 2 elements, expected 3'],
      [{ emb: [1, "x", 3] }, 'line 2, field "emb": [1,"x",3] is not a float32[3]: element 2 is not a number'],
      [
        { emb: [1, 1e39, 3] },
        'line 2, field "emb": [1,1e+39,3] is not a float32[3]: element 2 is out of the float32 range',
      ],
      [
        { emb: "[1,2,3]" },
        'line 2, field "emb": "[1,2,3]" is not a float32[3] (expected an array of 3 numbers)',
      ],
      [
        { event_time_ms: -1 },
        'line 2, field "event_time_ms": -1 is not an event time (integer milliseconds >= 0)',
      ],
      [
        { event_time_ms: "5" },
        'line 2, field "event_time_ms": "5" is not an event time (integer milliseconds >= 0)',
      ],
      [
        { nope: 1 },
        'line 2, field "nope": unknown field: table "t" has key "id", event time "event_time_ms" and features "f32", "f64", "i64", "flag", "name", "blob", "emb"',
      ],
    ];
    for (const [fields, message] of cases) {
      const err = await jsonlError(line({ id: "ok" }) + "\n" + line({ id: "k", ...fields }) + "\n", ALL);
      expect(err.message).toBe(message);
      expect(err.line).toBe(2);
      expect(err.column).toBeNull();
    }
  });

  it("rejects bad keys", async () => {
    const cases: [unknown, string][] = [
      [undefined, 'line 1: missing the key field "id"'],
      [null, 'line 1, field "id": the key must be a string, got null'],
      [42, 'line 1, field "id": the key must be a string, got 42'],
      ["", 'line 1, field "id": the key is empty'],
      ["\udc00", 'line 1, field "id": the key is not valid UTF-8 (a lone surrogate)'],
      ["é".repeat(513), 'line 1, field "id": the key is 1026 UTF-8 bytes long, more than 1024'],
    ];
    for (const [key, message] of cases) {
      const err = await jsonlError(JSON.stringify(key === undefined ? { f32: 1 } : { id: key }), ALL);
      expect(err.message).toBe(message);
    }
    const rows = await readAll(line({ id: "😀".repeat(256) }), "jsonl", ALL);
    expect(rows[0]!.key.length).toBe(512);
  });

  it("rejects a line that is not an object", async () => {
    for (const text of ["[1]", "5", '"x"', "null"]) {
      const err = await jsonlError(`${text}\n`, ALL);
      expect(err.message).toMatch(/^line 1: expected a JSON object, got /);
    }
  });

  it("coerces parsed objects directly", () => {
    const c = new JsonRowCoercer(ALL, { defaultEventTimeMs: 7 });
    expect(c.coerce({ id: "x", i64: "5" }, 3)).toEqual({
      key: "x",
      values: [null, null, 5n, null, null, null, null],
      eventTimeMs: 7,
    });
    expect(() => c.coerce({ id: "x", i64: {} }, 3)).toThrow('line 3, field "i64": {} is not an int64');
  });
});
