/**
 * A streaming JSONL (NDJSON) parser: one JSON value per line, LF or CRLF line ends, the last line
 * with or without one; blank (whitespace-only) lines are skipped; a UTF-8 BOM at the start is
 * skipped. Invalid UTF-8, bad JSON and a line longer than `maxLineBytes` are errors naming the line.
 *
 * Only the unfinished last line of a chunk is kept between chunks, so memory is bounded by the
 * longest line.
 */
import { isUtf8 } from "node:buffer";
import { errorMessage } from "../shared/errors.js";
import { ImportRowError } from "./errors.js";

const LF = 0x0a;
const CR = 0x0d;

/** Default bound on one line (and so on the parser's memory): 64 MiB. */
export const DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024;
const MAX_RAW_CHARS = 4096;

export interface JsonlParserOptions {
  /** Called synchronously with each parsed line's value, its 1-based line number and its text. */
  onValue: (value: unknown, line: number, text: string) => void;
  /** Called for a bad line, which is then skipped. Without it, the error is thrown. */
  onError?: (err: ImportRowError, raw: string) => void;
  maxLineBytes?: number;
}

export class JsonlParser {
  private readonly onValue: (value: unknown, line: number, text: string) => void;
  private readonly onError: ((err: ImportRowError, raw: string) => void) | undefined;
  private readonly maxLineBytes: number;
  private pending: Buffer[] = [];
  private pendingLen = 0;
  /** The current line was too long and has been reported: drop it up to its line feed. */
  private skipping = false;
  private line = 1;
  private ended = false;

  constructor(options: JsonlParserOptions) {
    this.onValue = options.onValue;
    this.onError = options.onError;
    this.maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  }

  /** The 1-based line the parser has reached. */
  get currentLine(): number {
    return this.line;
  }

  push(chunk: Buffer | Uint8Array): void {
    if (this.ended) throw new TypeError("JsonlParser.push after end");
    const data = Buffer.isBuffer(chunk)
      ? chunk
      : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let start = 0;
    while (true) {
      const nl = data.indexOf(LF, start);
      if (nl < 0) break;
      if (this.skipping) {
        this.skipping = false;
      } else if (this.pendingLen > 0) {
        this.pending.push(data.subarray(start, nl));
        const whole = Buffer.concat(this.pending, this.pendingLen + nl - start);
        this.pending = [];
        this.pendingLen = 0;
        if (whole.length > this.maxLineBytes) this.tooLong(whole);
        else this.handleLine(whole);
      } else {
        if (nl - start > this.maxLineBytes) this.tooLong(data.subarray(start, nl));
        else this.handleLine(data.subarray(start, nl));
      }
      this.line++;
      start = nl + 1;
    }
    if (start < data.length && !this.skipping) {
      this.pending.push(data.subarray(start));
      this.pendingLen += data.length - start;
      if (this.pendingLen > this.maxLineBytes) {
        const head = this.pending[0]!;
        this.pending = [];
        this.pendingLen = 0;
        this.skipping = true;
        this.tooLong(head);
      }
    }
  }

  /** Handles the last line, which may lack a line feed. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.pendingLen > 0 && !this.skipping) {
      const whole = Buffer.concat(this.pending, this.pendingLen);
      this.pending = [];
      this.pendingLen = 0;
      this.handleLine(whole);
    }
  }

  private handleLine(bytes: Buffer): void {
    let b = bytes;
    if (this.line === 1 && b.length >= 3 && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf)
      b = b.subarray(3);
    let n = b.length;
    if (n > 0 && b[n - 1] === CR) n--;
    let first = 0;
    while (first < n && isWhitespace(b[first]!)) first++;
    if (first === n) return; // blank line
    const body = b.subarray(0, n);
    if (!isUtf8(body)) {
      this.report(new ImportRowError("invalid UTF-8", { line: this.line }), body);
      return;
    }
    const text = body.toString("utf8");
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      this.report(
        new ImportRowError(`invalid JSON: ${errorMessage(err)}`, { line: this.line }, { cause: err }),
        body,
      );
      return;
    }
    this.onValue(value, this.line, text);
  }

  private tooLong(head: Buffer): void {
    this.report(
      new ImportRowError(`line is longer than ${this.maxLineBytes} bytes`, { line: this.line }),
      head,
    );
  }

  private report(err: ImportRowError, raw: Buffer): void {
    if (this.onError === undefined) throw err;
    const text = raw.toString("utf8", 0, Math.min(raw.length, MAX_RAW_CHARS * 4));
    this.onError(err, text.length > MAX_RAW_CHARS ? text.slice(0, MAX_RAW_CHARS) : text);
  }
}

function isWhitespace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === CR;
}
