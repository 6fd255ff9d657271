import { describe, expect, it } from "vitest";
import { JsonlParser } from "../../../src/importer/jsonl-parser.js";
import { ImportRowError } from "../../../src/importer/errors.js";

interface Parsed {
  values: { value: unknown; line: number; text: string }[];
  errors: { err: ImportRowError; raw: string }[];
}

function parse(input: Buffer | string, size = 1 << 20, collect = false, maxLineBytes?: number): Parsed {
  const buf = typeof input === "string" ? Buffer.from(input, "utf8") : input;
  const out: Parsed = { values: [], errors: [] };
  const parser = new JsonlParser({
    onValue: (value, line, text) => out.values.push({ value, line, text }),
    onError: collect ? (err, raw) => out.errors.push({ err, raw }) : undefined,
    maxLineBytes,
  });
  for (let off = 0; off < buf.length; off += size) parser.push(buf.subarray(off, off + size));
  parser.end();
  return out;
}

function parseError(input: Buffer | string, size?: number): ImportRowError {
  try {
    parse(input, size);
  } catch (err) {
    expect(err).toBeInstanceOf(ImportRowError);
    return err as ImportRowError;
  }
  throw new Error("expected an ImportRowError");
}

describe("JsonlParser", () => {
  const input = '\uFEFF{"a":1}\n\n  \r\n{"b":"x\\ny"}\r\n[1,2]\n{"c":"é😀"}';

  it("parses one value per line, skipping blank lines, with line numbers, under every chunk size", () => {
    const len = Buffer.byteLength(input);
    for (let size = 1; size <= len; size++) {
      const p = parse(input, size);
      expect(p.values.map((v) => [v.line, v.value])).toEqual([
        [1, { a: 1 }],
        [4, { b: "x\ny" }],
        [5, [1, 2]],
        [6, { c: "é😀" }],
      ]);
      expect(p.values[1]!.text).toBe('{"b":"x\\ny"}');
    }
  });

  it("parses nothing from nothing", () => {
    expect(parse("").values).toEqual([]);
    expect(parse("\n\n").values).toEqual([]);
  });

  it("rejects bad JSON, naming the line", () => {
    const err = parseError('{"a":1}\n{"a":\n');
    expect(err.line).toBe(2);
    expect(err.column).toBeNull();
    expect(err.message).toMatch(/^line 2: invalid JSON: /);
    expect(err.code).toBe("STRATA_IMPORT_INVALID");
  });

  it("rejects invalid UTF-8, however it is split", () => {
    const bad = Buffer.concat([Buffer.from('{"a":1}\n{"a":"'), Buffer.from([0xc3]), Buffer.from('"}\n')]);
    for (let size = 1; size <= bad.length; size++) {
      expect(parseError(bad, size).message).toBe("line 2: invalid UTF-8");
    }
  });

  it("with onError, reports bad lines with their text and goes on", () => {
    for (const size of [1, 4, 1000]) {
      const p = parse('{"a":1}\nnope\n{"a":2}\n{bad\n{"a":3}', size, true);
      expect(p.values.map((v) => v.value)).toEqual([{ a: 1 }, { a: 2 }, { a: 3 }]);
      expect(p.errors.map((e) => [e.err.line, e.raw])).toEqual([
        [2, "nope"],
        [4, "{bad"],
      ]);
    }
  });

  it("bounds a line's length, and recovers after a long line", () => {
    const long = '{"a":"' + "x".repeat(5000) + '"}';
    for (const size of [7, 100, 100_000]) {
      const p = parse(`{"a":1}\n${long}\n{"a":2}\n`, size, true, 1000);
      expect(p.values.map((v) => [v.line, v.value])).toEqual([
        [1, { a: 1 }],
        [3, { a: 2 }],
      ]);
      expect(p.errors.map((e) => [e.err.line, e.err.reason])).toEqual([
        [2, "line is longer than 1000 bytes"],
      ]);
    }
    expect(() => parse(long, 64, false, 1000)).toThrow("line 1: line is longer than 1000 bytes");
  });

  it("refuses a push after end", () => {
    const parser = new JsonlParser({ onValue: () => {} });
    parser.end();
    expect(() => parser.push(Buffer.from("{}"))).toThrow(TypeError);
  });
});
