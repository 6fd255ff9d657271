import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { CsvParser, type CsvRecord } from "../../../src/importer/csv-parser.js";
import { ImportRowError } from "../../../src/importer/errors.js";

interface Rec {
  line: number;
  fields: string[];
  raw: string;
}

interface Parsed {
  records: Rec[];
  errors: { err: ImportRowError; raw: string }[];
}

function snapshot(r: CsvRecord): Rec {
  return { line: r.line, fields: r.toArray(), raw: r.raw() };
}

/** Parses `input` pushed in chunks of the given sizes (cycled), collecting errors when asked. */
function parse(
  input: Buffer | string,
  sizes: number[] = [1 << 20],
  collect = false,
  maxRecordBytes?: number,
): Parsed {
  const buf = typeof input === "string" ? Buffer.from(input, "utf8") : input;
  const records: Rec[] = [];
  const errors: Parsed["errors"] = [];
  const parser = new CsvParser({
    onRecord: (r) => records.push(snapshot(r)),
    onError: collect ? (err, raw) => errors.push({ err, raw }) : undefined,
    maxRecordBytes,
  });
  let off = 0;
  let i = 0;
  while (off < buf.length) {
    const n = Math.max(1, sizes[i++ % sizes.length]!);
    parser.push(buf.subarray(off, off + n));
    off += n;
  }
  parser.end();
  return { records, errors };
}

function fieldsOf(p: Parsed): string[][] {
  return p.records.map((r) => r.fields);
}

function parseError(input: Buffer | string, sizes?: number[]): ImportRowError {
  try {
    parse(input, sizes);
  } catch (err) {
    expect(err).toBeInstanceOf(ImportRowError);
    return err as ImportRowError;
  }
  throw new Error("expected an ImportRowError");
}

/** Tricky inputs, each checked under every chunk size from 1 to its length. */
const CASES: { name: string; input: string; fields: string[][]; lines: number[] }[] = [
  {
    name: "plain LF",
    input: "a,b,c\n1,2,3\n",
    fields: [
      ["a", "b", "c"],
      ["1", "2", "3"],
    ],
    lines: [1, 2],
  },
  {
    name: "CRLF",
    input: "a,b\r\n1,2\r\n",
    fields: [
      ["a", "b"],
      ["1", "2"],
    ],
    lines: [1, 2],
  },
  {
    name: "no final newline",
    input: "a,b\n1,2",
    fields: [
      ["a", "b"],
      ["1", "2"],
    ],
    lines: [1, 2],
  },
  {
    name: "final CR only",
    input: "a,b\r\n1,2\r",
    fields: [
      ["a", "b"],
      ["1", "2"],
    ],
    lines: [1, 2],
  },
  {
    name: "quoted commas and doubled quotes",
    input: 'k,v\n"a,b","say ""hi"""\n',
    fields: [
      ["k", "v"],
      ["a,b", 'say "hi"'],
    ],
    lines: [1, 2],
  },
  {
    name: "newlines inside quotes",
    input: 'k,v\n"x","line1\nline2\r\nline3"\nnext,1\n',
    fields: [
      ["k", "v"],
      ["x", "line1\nline2\r\nline3"],
      ["next", "1"],
    ],
    lines: [1, 2, 5],
  },
  {
    name: "empty fields",
    input: ",\n,,\na,\n",
    fields: [
      ["", ""],
      ["", "", ""],
      ["a", ""],
    ],
    lines: [1, 2, 3],
  },
  { name: "quoted empty", input: '"",x\n', fields: [["", "x"]], lines: [1] },
  { name: "only quotes", input: '""""\n', fields: [['"']], lines: [1] },
  { name: "quoted at end of input", input: 'a,"b"', fields: [["a", "b"]], lines: [1] },
  { name: "quoted then CRLF", input: '"a"\r\n"b"\r\n', fields: [["a"], ["b"]], lines: [1, 2] },
  { name: "trailing comma at end of input", input: "a,", fields: [["a", ""]], lines: [1] },
  { name: "blank lines", input: "a\n\nb\n", fields: [["a"], [""], ["b"]], lines: [1, 2, 3] },
  {
    name: "BOM",
    input: "\uFEFFid,x\n1,2\n",
    fields: [
      ["id", "x"],
      ["1", "2"],
    ],
    lines: [1, 2],
  },
  { name: "BOM only once", input: "\uFEFF\uFEFFa\n", fields: [["\uFEFFa"]], lines: [1] },
  {
    name: "UTF-8 multibyte",
    input: 'clé,naïve\n日本語,"😀,🎉"\nshort ü,a long value with ümlauts in it\n',
    fields: [
      ["clé", "naïve"],
      ["日本語", "😀,🎉"],
      ["short ü", "a long value with ümlauts in it"],
    ],
    lines: [1, 2, 3],
  },
  { name: "single field", input: "x", fields: [["x"]], lines: [1] },
  { name: "spaces kept", input: " a , b \n", fields: [[" a ", " b "]], lines: [1] },
];

describe("CsvParser: RFC 4180", () => {
  for (const c of CASES) {
    it(`${c.name}, under every chunk size`, () => {
      const whole = parse(c.input);
      expect(fieldsOf(whole)).toEqual(c.fields);
      expect(whole.records.map((r) => r.line)).toEqual(c.lines);
      const len = Buffer.byteLength(c.input);
      for (let size = 1; size <= len; size++) {
        const p = parse(c.input, [size]);
        expect(fieldsOf(p), `chunk size ${size}`).toEqual(c.fields);
        expect(
          p.records.map((r) => r.line),
          `chunk size ${size}`,
        ).toEqual(c.lines);
      }
    });
  }

  it("parses nothing from an empty input, even in empty chunks", () => {
    expect(parse("").records).toEqual([]);
    const records: string[][] = [];
    const parser = new CsvParser({ onRecord: (r) => records.push(r.toArray()) });
    parser.push(Buffer.alloc(0));
    parser.push(Buffer.alloc(0));
    parser.end();
    expect(records).toEqual([]);
  });

  it("takes Uint8Array chunks", () => {
    const records: string[][] = [];
    const parser = new CsvParser({ onRecord: (r) => records.push(r.toArray()) });
    parser.push(new TextEncoder().encode("a,b\n"));
    parser.push(new TextEncoder().encode("c,d"));
    parser.end();
    expect(records).toEqual([
      ["a", "b"],
      ["c", "d"],
    ]);
  });

  it("does not serve stale text when the caller refills the same Buffer", () => {
    const records: string[][] = [];
    const parser = new CsvParser({ onRecord: (r) => records.push(r.toArray()) });
    const chunk = Buffer.from("aaa,bbb\n");
    parser.push(chunk);
    chunk.write("ccc,ddd\n");
    parser.push(chunk);
    parser.end();
    expect(records).toEqual([
      ["aaa", "bbb"],
      ["ccc", "ddd"],
    ]);
  });

  it("reports the raw record text", () => {
    const p = parse('a,"b\nc"\r\nd\n');
    expect(p.records.map((r) => r.raw)).toEqual(['a,"b\nc"', "d"]);
  });

  it("decodes short and long fields alike across many records and windows", () => {
    const lines: string[] = [];
    for (let i = 0; i < 20_000; i++) lines.push(`k${i},${"v".repeat(i % 40)}${i % 7 === 0 ? "é" : ""}`);
    const text = lines.join("\n") + "\n";
    for (const size of [4096, 65_536, 1 << 20]) {
      const p = parse(text, [size]);
      expect(p.records.length).toBe(20_000);
      expect(p.records[12_345]!.fields).toEqual(lines[12_345]!.split(","));
      expect(fieldsOf(p).map((f) => f.join(","))).toEqual(lines);
    }
  });

  it("matches a reference parser on random CSV under random chunk splits (property)", () => {
    const field = fc.oneof(
      fc.string({ unit: fc.constantFrom("a", "b", ",", '"', "\n", "\r", " ", "é", "😀") }),
      fc.string({ unit: "binary", maxLength: 20 }),
    );
    const row = fc.array(field, { minLength: 1, maxLength: 5 });
    fc.assert(
      fc.property(
        fc.array(row, { minLength: 1, maxLength: 8 }),
        fc.constantFrom("\n", "\r\n"),
        fc.boolean(),
        fc.array(fc.integer({ min: 1, max: 17 }), { minLength: 1, maxLength: 10 }),
        (rows, eol, finalEol, sizes) => {
          const input = rows.map((r) => r.map(quoteAlways).join(",")).join(eol) + (finalEol ? eol : "");
          const p = parse(input, sizes);
          expect(fieldsOf(p)).toEqual(rows);
          // Physical lines: each record starts one line after the previous one's last line.
          let line = 1;
          p.records.forEach((r, i) => {
            expect(r.line).toBe(line);
            line += 1 + rows[i]!.join(",").split("\n").length - 1;
          });
        },
      ),
      { numRuns: 300 },
    );
  });

  it("gives the same records when large pushes finish a carried record first (property)", () => {
    // Pushes over 4 KiB that find a record carried over are cut after their first line feed.
    const field = fc.oneof(
      fc.string({ unit: fc.constantFrom("a", "b", ",", '"', "\n", "\r", " ", "é", "😀"), maxLength: 40 }),
      fc.string({ unit: "binary", maxLength: 60 }),
    );
    fc.assert(
      fc.property(
        fc.array(fc.array(field, { minLength: 1, maxLength: 6 }), { minLength: 50, maxLength: 400 }),
        fc.constantFrom("\n", "\r\n"),
        fc.array(fc.integer({ min: 1, max: 12_000 }), { minLength: 1, maxLength: 6 }),
        (rows, eol, sizes) => {
          const input = rows.map((r) => r.map(quoteAlways).join(",")).join(eol) + eol;
          const p = parse(input, sizes);
          expect(fieldsOf(p)).toEqual(rows);
          let line = 1;
          p.records.forEach((r, i) => {
            expect(r.line).toBe(line);
            line += 1 + rows[i]!.join(",").split("\n").length - 1;
          });
        },
      ),
      // Shrinking hundreds of rows takes minutes: report the first failure as found.
      { numRuns: 150, endOnFailure: true },
    );
  });

  it("parses unquoted fields when nothing needs quotes (property)", () => {
    const plain = fc.string({ unit: fc.constantFrom("a", "1", ".", "-", " ", "é", "x"), minLength: 1 });
    fc.assert(
      fc.property(
        fc.array(fc.array(plain, { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 10 }),
        fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 5 }),
        (rows, sizes) => {
          const input = rows.map((r) => r.join(",")).join("\n");
          expect(fieldsOf(parse(input, sizes))).toEqual(rows);
        },
      ),
      { numRuns: 200 },
    );
  });
});

function quoteAlways(s: string): string {
  return `"${s.replaceAll('"', '""')}"`;
}

describe("CsvParser: errors", () => {
  it("rejects a quote inside an unquoted field, naming line and column", () => {
    const err = parseError('a,b\nc,d"e,f\n');
    expect(err.line).toBe(2);
    expect(err.column).toBe(2);
    expect(err.code).toBe("STRATA_IMPORT_INVALID");
    expect(err.message).toMatch(/^line 2, column 2: a quote inside an unquoted field/);
  });

  it("rejects text after a closing quote", () => {
    const err = parseError('a,b\n1,"x"y\n');
    expect([err.line, err.column]).toEqual([2, 2]);
    expect(err.reason).toMatch(/unexpected "y" after the closing quote/);
  });

  it("names the physical line of the error inside a multi-line record", () => {
    const err = parseError('a,b\n1,"x\ny\nz"q\n');
    expect([err.line, err.column]).toEqual([4, 2]);
  });

  it("rejects a bare CR outside quotes", () => {
    const err = parseError("a,b\rc\n");
    expect([err.line, err.column]).toEqual([1, 2]);
    expect(err.reason).toMatch(/carriage return/);
  });

  it("rejects an unterminated quote at the end, naming the line it opened on", () => {
    for (const size of [1, 3, 100]) {
      const err = parseError('a,b\n1,"open\nmore\n', [size]);
      expect([err.line, err.column]).toEqual([2, 2]);
      expect(err.reason).toMatch(/unterminated quoted field \(opened on line 2\)/);
    }
  });

  it("rejects invalid UTF-8 with line and column, however it is split", () => {
    const input = Buffer.concat([
      Buffer.from("a,b\nok,fine\nx,"),
      Buffer.from([0xc3, 0x28]),
      Buffer.from("\ny,z\n"),
    ]);
    for (let size = 1; size <= input.length; size++) {
      const err = parseError(input, [size]);
      expect([err.line, err.column, err.reason]).toEqual([3, 2, "invalid UTF-8"]);
    }
  });

  it("rejects invalid UTF-8 in the last line without a newline, and a truncated sequence", () => {
    const err = parseError(Buffer.concat([Buffer.from("a\nb,"), Buffer.from([0xe2, 0x82])]));
    expect([err.line, err.column]).toEqual([2, 2]);
    const err2 = parseError(Buffer.concat([Buffer.from('a,"'), Buffer.from([0xff]), Buffer.from('"\n')]));
    expect([err2.line, err2.column]).toEqual([1, 2]);
  });

  it("does not take a UTF-8 sequence split across chunks for an error", () => {
    const input = "k,v\n" + "é,日本\n".repeat(50);
    for (let size = 1; size <= 12; size++) expect(parse(input, [size]).records.length).toBe(51);
  });

  it("names the column when the header is known", () => {
    const records: string[][] = [];
    const parser = new CsvParser({
      onRecord: (r) => {
        records.push(r.toArray());
        if (records.length === 1) parser.setColumnNames(r.toArray());
      },
    });
    expect(() => {
      parser.push(Buffer.from('id,name\n1,bad"quote\n'));
      parser.end();
    }).toThrow('line 2, column 2 ("name"): a quote inside an unquoted field');
  });

  it("bounds a record's size", () => {
    const err = (() => {
      try {
        parse('a,b\n"' + "x".repeat(5000), [100], false, 1000);
      } catch (e) {
        return e as ImportRowError;
      }
      throw new Error("no error");
    })();
    expect(err.reason).toMatch(/record is longer than 1000 bytes/);
  });

  it("with onError, reports the bad record with its text and goes on at the next line", () => {
    const input = 'h1,h2\nok,1\nbad"q,2\nok2,3\n"x"y,4\n"multi\nline",5\nbad\rcr,6\nlast,7';
    for (const size of [1, 2, 5, 1000]) {
      const p = parse(input, [size], true);
      expect(fieldsOf(p)).toEqual([
        ["h1", "h2"],
        ["ok", "1"],
        ["ok2", "3"],
        ["multi\nline", "5"],
        ["last", "7"],
      ]);
      expect(p.records.map((r) => r.line)).toEqual([1, 2, 4, 6, 9]);
      expect(p.errors.map((e) => [e.err.line, e.err.column])).toEqual([
        [3, 1],
        [5, 1],
        [8, 1],
      ]);
      expect(p.errors.map((e) => e.raw)).toEqual(['bad"q,2', '"x"y,4', "bad\rcr,6"]);
    }
  });

  it("with onError, skips a record with invalid UTF-8 and keeps the rest", () => {
    const input = Buffer.concat([Buffer.from("a\n"), Buffer.from([0x80]), Buffer.from("\nb\n")]);
    const p = parse(input, [1 << 20], true);
    expect(fieldsOf(p)).toEqual([["a"], ["b"]]);
    expect(p.errors.map((e) => [e.err.line, e.err.column, e.err.reason])).toEqual([[2, 1, "invalid UTF-8"]]);
  });

  it("with onError, reports an oversized record once and recovers after it", () => {
    const input = "a\n" + "y".repeat(3000) + "\nb\n";
    const p = parse(input, [100], true, 1000);
    expect(fieldsOf(p)).toEqual([["a"], ["b"]]);
    expect(p.errors.length).toBe(1);
    expect(p.errors[0]!.err.line).toBe(2);
  });

  it("refuses a push after end", () => {
    const parser = new CsvParser({ onRecord: () => {} });
    parser.end();
    expect(() => parser.push(Buffer.from("a"))).toThrow(TypeError);
  });
});
