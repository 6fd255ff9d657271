/**
 * A streaming RFC 4180 CSV parser over UTF-8 Buffers, built for throughput.
 *
 * - Fields are separated by `,`; records end with LF or CRLF; the last record may lack one.
 * - A quoted field may hold commas, CR, LF and doubled quotes (`""` stands for `"`).
 * - A UTF-8 BOM at the very start is skipped.
 * - Strict: a quote inside an unquoted field, anything but a separator after a closing quote,
 *   a bare CR outside quotes, an unterminated quote, invalid UTF-8 and a record larger than
 *   `maxRecordBytes` are errors naming the physical line and the 1-based column.
 *
 * Records are not materialised as strings: the parser hands a reusable {@link CsvRecord} holding
 * field offsets into its current buffer to a synchronous callback. The record (and any view into
 * its buffer) is valid only during that call: the next chunk may overwrite the bytes. A consumer
 * decodes what it needs once (`record.field(i)`, or its own parse of `record.buf[start..end)`).
 *
 * Chunk boundaries may fall anywhere, even inside a CRLF, a doubled quote or a UTF-8 sequence:
 * the parser keeps the unfinished record (only it) and resumes scanning where it stopped, so the
 * work is linear in the input however it is split. UTF-8 is validated natively over every run of
 * complete lines of a chunk (`buffer.isUtf8`); only a run that fails is re-checked field by field
 * to name the culprit.
 */
import { isAscii, isUtf8 } from "node:buffer";
import { ImportRowError } from "./errors.js";

const COMMA = 0x2c;
const QUOTE = 0x22;
const LF = 0x0a;
const CR = 0x0d;

/** Field flag: the field was quoted. */
export const FIELD_QUOTED = 1;
/** Field flag: the quoted field holds doubled quotes, so its raw bytes are not its value. */
export const FIELD_ESCAPED = 2;

/** Default bound on one record (and so on the parser's memory): 64 MiB. */
export const DEFAULT_MAX_RECORD_BYTES = 64 * 1024 * 1024;
/** At most this many characters of a bad record are passed to `onError`. */
export const MAX_RAW_CHARS = 4096;
const MAX_RAW_BYTES = MAX_RAW_CHARS * 4;

const MODE_FIELD_START = 0;
const MODE_UNQUOTED = 1;
const MODE_QUOTED = 2;
const MODE_AFTER_QUOTE = 3;
const MODE_SKIP_LINE = 4;

const EMPTY = Buffer.alloc(0);
/** Fields shorter than this are sliced from a decoded buffer (V8 copies substrings below 13). */
const SHORT_FIELD = 13;
const TEXT_WINDOW = 64 * 1024;

/** Node's native decoders, without `Buffer#toString`'s argument handling (~2x cheaper). */
interface SliceableBuffer extends Buffer {
  utf8Slice(start: number, end: number): string;
  latin1Slice(start: number, end: number): string;
}
const hasNativeSlices = typeof (Buffer.prototype as Partial<SliceableBuffer>).utf8Slice === "function";

function utf8Slice(buf: Buffer, start: number, end: number): string {
  return hasNativeSlices ? (buf as SliceableBuffer).utf8Slice(start, end) : buf.toString("utf8", start, end);
}

function latin1Slice(buf: Buffer, start: number, end: number): string {
  return hasNativeSlices
    ? (buf as SliceableBuffer).latin1Slice(start, end)
    : buf.toString("latin1", start, end);
}
const MIN_WORK_BYTES = 64 * 1024;
/** Pushes longer than this finish a carried-over record before the rest (see push). */
const SPLIT_PUSH_BYTES = 4096;
const QUOTED_JS_BYTES = 256;
/** A work buffer grown past this for a huge record is dropped once the record is done. */
const KEEP_WORK_BYTES = 8 * 1024 * 1024;

/** One parsed record: field `i` is `buf[starts[i] .. ends[i])`, without its quotes. */
export class CsvRecord {
  /** The bytes the offsets point into. Valid only during the `onRecord` call. */
  buf: Buffer = EMPTY;
  /** Number of fields. */
  count = 0;
  starts = new Int32Array(16);
  ends = new Int32Array(16);
  /** FIELD_QUOTED | FIELD_ESCAPED per field. */
  flags = new Uint8Array(16);
  /** Physical line (1-based) on which the record starts. */
  line = 1;
  /** The record's bytes in `buf`, without its line terminator. */
  start = 0;
  end = 0;
  private textOf: Buffer | null = null;
  private window: string | null = null;
  private windowStart = 0;
  private windowEnd = 0;

  /** The value of field `i`, decoded from UTF-8 (doubled quotes undone). */
  field(i: number): string {
    const str = this.text(this.starts[i]!, this.ends[i]!);
    return (this.flags[i]! & FIELD_ESCAPED) !== 0 ? str.replaceAll('""', '"') : str;
  }

  /** `buf[start..end)` decoded from UTF-8 (the bytes must be valid: the parser checked them). */
  text(start: number, end: number): string {
    if (end - start < SHORT_FIELD) {
      if (this.textOf !== this.buf || start < this.windowStart || end > this.windowEnd)
        this.decodeWindow(start);
      if (this.window !== null) return this.window.slice(start - this.windowStart, end - this.windowStart);
    }
    return utf8Slice(this.buf, start, end);
  }

  /** @internal */
  forgetText(): void {
    this.textOf = null;
    this.window = null;
    this.windowStart = this.windowEnd = 0;
  }

  /**
   * A native decode costs ~80 ns whatever the length; slicing a JS string ~15 ns. So ASCII text
   * is decoded a window at a time (64 KiB: larger strings become slow external strings), and
   * short fields are sliced from it: below 13 characters V8 copies a substring (no reference to
   * the window is kept); longer ones are decoded natively, so a kept key never pins a window.
   */
  private decodeWindow(start: number): void {
    const end = Math.min(this.buf.length, start + TEXT_WINDOW);
    this.textOf = this.buf;
    this.windowStart = start;
    this.windowEnd = end;
    const bytes = this.buf.subarray(start, end);
    this.window = isAscii(bytes) ? latin1Slice(bytes, 0, bytes.length) : null;
  }

  isQuoted(i: number): boolean {
    return (this.flags[i]! & FIELD_QUOTED) !== 0;
  }

  /** An empty physical line: one unquoted empty field. */
  isBlank(): boolean {
    return this.count === 1 && this.starts[0] === this.ends[0] && this.flags[0] === 0;
  }

  /** All fields as strings (for headers and tests; the hot path reads fields one by one). */
  toArray(): string[] {
    const out: string[] = [];
    for (let i = 0; i < this.count; i++) out.push(this.field(i));
    return out;
  }

  /** The record's text as written (for bad-row reports), cut at {@link MAX_RAW_CHARS}. */
  raw(): string {
    return rawText(this.buf, this.start, this.end);
  }

  /** @internal */
  add(start: number, end: number, flags: number): void {
    const i = this.count;
    if (i === this.starts.length) this.grow();
    this.starts[i] = start;
    this.ends[i] = end;
    this.flags[i] = flags;
    this.count = i + 1;
  }

  /** @internal Moves every offset down by `delta` (the buffer was compacted). */
  shift(delta: number): void {
    for (let i = 0; i < this.count; i++) {
      this.starts[i] = this.starts[i]! - delta;
      this.ends[i] = this.ends[i]! - delta;
    }
  }

  private grow(): void {
    const n = this.starts.length * 2;
    const starts = new Int32Array(n);
    starts.set(this.starts);
    const ends = new Int32Array(n);
    ends.set(this.ends);
    const flags = new Uint8Array(n);
    flags.set(this.flags);
    this.starts = starts;
    this.ends = ends;
    this.flags = flags;
  }
}

export interface CsvParserOptions {
  /** Called synchronously for every record, in order, the header included. */
  onRecord: (record: CsvRecord) => void;
  /**
   * Called for a malformed record, which is then skipped (the parser resumes after the next LF).
   * Without it, the error is thrown from `push` / `end`.
   */
  onError?: (err: ImportRowError, raw: string) => void;
  /** Bound on one record's bytes; a longer one is an error (usually an unclosed quote). */
  maxRecordBytes?: number;
  /**
   * Optional fast path, offered every record that starts in bytes known to be valid UTF-8: it may
   * consume records from `record.buf[start..)` itself, straight from the bytes (see
   * {@link RecordTaker}). `record.line` is the first record's line.
   */
  tryRecords?: RecordTaker;
  /** The first bytes are the file's start, where a UTF-8 BOM is skipped (default true). */
  fileStart?: boolean;
}

/**
 * A fast path of the parser ({@link CsvParserOptions.tryRecords}): it takes one or more records,
 * each one complete physical line (no line feed inside quotes) ending before `limit`, and handles
 * them exactly as tokenising them would (declining anything doubtful, errors included).
 */
export interface RecordTaker {
  /**
   * Takes records from `record.buf[start..limit)`; returns how many (0: none, the parser then
   * tokenises the record at `start` and calls `onRecord`), with {@link next} set past the last
   * one's line end.
   */
  take(record: CsvRecord, start: number, limit: number): number;
  next: number;
}

export class CsvParser {
  private readonly onRecord: (record: CsvRecord) => void;
  private readonly onError: ((err: ImportRowError, raw: string) => void) | undefined;
  private readonly maxRecordBytes: number;
  private readonly tryRecords: RecordTaker | undefined;
  private readonly rec = new CsvRecord();
  private names: readonly string[] | null = null;

  /** Current bytes: a caller's chunk, or `work` when an unfinished record was carried over. */
  private buf: Buffer = EMPTY;
  private len = 0;
  private work: Buffer = EMPTY;
  /** `buf` is a view of `work`. */
  private inWork = false;

  // Scanner state; offsets are into `buf`.
  private pos = 0;
  private mode = MODE_FIELD_START;
  private recStart = 0;
  private fieldStart = 0;
  private fieldEnd = 0;
  private fieldFlags = 0;
  /** Physical line of `pos`. */
  private line = 1;
  private recLine = 1;
  private quoteLine = 1;
  /** `buf[..utf8Checked)` ends at a line boundary and was validated. */
  private utf8Checked = 0;
  /** Records starting before this offset get their fields validated one by one. */
  private utf8SlowUntil = 0;

  /** A malformed record's error, reported once its line has been skipped. */
  private pending: ImportRowError | null = null;
  private bomPending: Buffer | null = EMPTY;
  private ended = false;

  constructor(options: CsvParserOptions) {
    this.onRecord = options.onRecord;
    this.onError = options.onError;
    this.maxRecordBytes = options.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES;
    this.tryRecords = options.tryRecords;
    if (options.fileStart === false) this.bomPending = null;
  }

  /** Column names, once the header is known, so that errors can name the column. */
  setColumnNames(names: readonly string[]): void {
    this.names = names;
  }

  /** The physical line the parser has reached (1-based). */
  get currentLine(): number {
    return this.line;
  }

  push(chunk: Buffer | Uint8Array): void {
    if (this.ended) throw new TypeError("CsvParser.push after end");
    let data = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (this.bomPending !== null) {
      const joined = this.bomPending.length === 0 ? data : Buffer.concat([this.bomPending, data]);
      if (joined.length < 3) {
        this.bomPending = joined;
        return;
      }
      this.bomPending = null;
      data = stripBom(joined);
    }
    if (data.length === 0) return;
    if (this.len > this.recStart && data.length > SPLIT_PUSH_BYTES) {
      // A record is carried over: appending copies all of `data` after it. Finish it with the
      // bytes up to the first line feed first; if that ends it, the rest is scanned in place.
      const nl = data.indexOf(LF);
      if (nl >= 0 && nl + 1 < data.length) {
        this.pushData(data.subarray(0, nl + 1));
        this.pushData(data.subarray(nl + 1));
        return;
      }
    }
    this.pushData(data);
  }

  private pushData(data: Buffer): void {
    const newStart = this.append(data);
    this.checkUtf8Lines(newStart, false);
    this.scan(false);
    this.afterScan();
  }

  /**
   * True when everything pushed so far ended exactly at a record's end (nothing carried over,
   * not inside quotes, no bad record pending): the next byte starts a record. For a file parsed
   * in parts, the part before a split point must end like this.
   */
  atRecordBoundary(): boolean {
    return (
      this.bomPending === null &&
      this.mode === MODE_FIELD_START &&
      this.rec.count === 0 &&
      this.pending === null &&
      this.recStart === this.len &&
      this.pos === this.len
    );
  }

  /** Finishes the last record (which may lack a line end). */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.bomPending !== null) {
      const data = stripBom(this.bomPending);
      this.bomPending = null;
      if (data.length > 0) this.append(data);
    }
    this.checkUtf8Lines(0, true);
    this.scan(true);
    this.afterScan();
  }

  /** Appends `data` after the unfinished record; returns the offset of `data` in `buf`. */
  private append(data: Buffer): number {
    const tail = this.len - this.recStart;
    if (tail === 0) {
      this.rebase(this.len);
      this.buf = data;
      this.len = data.length;
      this.inWork = false;
      return 0;
    }
    const need = tail + data.length;
    if (this.inWork && this.work.length >= need) {
      if (this.recStart > 0) this.work.copyWithin(0, this.recStart, this.len);
    } else {
      const target =
        !this.inWork && this.work.length >= need
          ? this.work
          : Buffer.allocUnsafeSlow(Math.max(need, this.work.length * 2, MIN_WORK_BYTES));
      this.buf.copy(target, 0, this.recStart, this.len);
      this.work = target;
    }
    data.copy(this.work, tail);
    this.rebase(this.recStart);
    // Exactly `need` bytes long, so that indexOf never sees stale bytes past the end.
    this.buf = this.work.subarray(0, need);
    this.len = need;
    this.inWork = true;
    return tail;
  }

  private rebase(delta: number): void {
    if (delta === 0) return;
    this.pos -= delta;
    this.recStart -= delta;
    this.fieldStart -= delta;
    this.fieldEnd -= delta;
    this.utf8Checked = Math.max(0, this.utf8Checked - delta);
    this.utf8SlowUntil = Math.max(0, this.utf8SlowUntil - delta);
    this.rec.shift(delta);
  }

  private afterScan(): void {
    if (this.recStart === this.len && this.work.length > KEEP_WORK_BYTES) {
      if (this.inWork) {
        this.rebase(this.len);
        this.buf = EMPTY;
        this.len = 0;
        this.inWork = false;
      }
      this.work = EMPTY;
    }
  }

  /** Validates the complete lines that arrived (at the end: everything left) in one native call. */
  private checkUtf8Lines(newStart: number, final: boolean): void {
    let upTo: number;
    if (final) {
      upTo = this.len;
    } else {
      const nl = this.buf.subarray(newStart, this.len).lastIndexOf(LF);
      if (nl < 0) return;
      upTo = newStart + nl + 1;
    }
    const from = this.utf8Checked;
    if (upTo <= from) return;
    if (!isUtf8(this.buf.subarray(from, upTo))) this.utf8SlowUntil = upTo;
    this.utf8Checked = upTo;
  }

  private scan(final: boolean): void {
    const buf = this.buf;
    const len = this.len;
    const rec = this.rec;
    const taker = this.tryRecords;
    rec.buf = buf;
    rec.forgetText(); // a caller may refill the same Buffer object between pushes
    let p = this.pos;
    let mode = this.mode;

    while (true) {
      if (mode === MODE_FIELD_START) {
        if (p >= len) break;
        if (taker !== undefined && rec.count === 0 && p >= this.utf8SlowUntil) {
          rec.line = this.recLine;
          const taken = taker.take(rec, p, len);
          if (taken > 0) {
            // One physical line each: nextRecord counts the last one's line feed.
            p = taker.next;
            this.line += taken - 1;
            this.nextRecord(p);
            continue;
          }
        }
        if (buf[p] === QUOTE) {
          p++;
          this.fieldStart = p;
          this.fieldFlags = FIELD_QUOTED;
          this.quoteLine = this.line;
          mode = MODE_QUOTED;
          continue;
        }
        this.fieldStart = p;
        mode = MODE_UNQUOTED;
      }

      if (mode === MODE_UNQUOTED) {
        // Every special byte (, " CR LF) is <= 0x2c: most bytes cost one comparison.
        let c = 0;
        while (p < len) {
          c = buf[p]!;
          if (c <= COMMA && (c === COMMA || c === LF || c === QUOTE || c === CR)) break;
          p++;
        }
        if (p >= len) break;
        if (c === COMMA) {
          rec.add(this.fieldStart, p, 0);
          p++;
          mode = MODE_FIELD_START;
          continue;
        }
        if (c === LF) {
          rec.add(this.fieldStart, p, 0);
          this.emit(p);
          p++;
          this.nextRecord(p);
          mode = MODE_FIELD_START;
          continue;
        }
        if (c === CR) {
          if (p + 1 >= len) {
            if (!final) break;
            rec.add(this.fieldStart, p, 0);
            this.emit(p);
            p = len;
            this.nextRecord(p);
            mode = MODE_FIELD_START;
            continue;
          }
          if (buf[p + 1] === LF) {
            rec.add(this.fieldStart, p, 0);
            this.emit(p);
            p += 2;
            this.nextRecord(p);
            mode = MODE_FIELD_START;
            continue;
          }
          this.fail("a carriage return outside quotes must be followed by a line feed");
          mode = MODE_SKIP_LINE;
          continue;
        }
        // c === QUOTE
        this.fail("a quote inside an unquoted field (quote the whole field and double the quotes in it)");
        mode = MODE_SKIP_LINE;
        continue;
      }

      if (mode === MODE_QUOTED) {
        // Short quoted fields are scanned in JS (a native indexOf costs ~50 ns a call); past
        // QUOTED_JS_BYTES, indexOf takes over.
        let q = -1;
        const jsEnd = Math.min(len, p + QUOTED_JS_BYTES);
        while (p < jsEnd) {
          const c = buf[p]!;
          if (c === QUOTE) {
            q = p;
            break;
          }
          if (c === LF) this.line++;
          p++;
        }
        if (q < 0 && p < len) {
          q = buf.indexOf(QUOTE, p);
          const stop = q < 0 ? len : q;
          // Line feeds inside quotes still count as physical lines.
          let nl = buf.indexOf(LF, p);
          while (nl >= 0 && nl < stop) {
            this.line++;
            nl = buf.indexOf(LF, nl + 1);
          }
        }
        if (q < 0) {
          p = len;
          break;
        }
        p = q;
        if (q + 1 >= len) {
          if (!final) break;
          this.fieldEnd = q;
          p = len;
          mode = MODE_AFTER_QUOTE;
          continue;
        }
        if (buf[q + 1] === QUOTE) {
          this.fieldFlags = FIELD_QUOTED | FIELD_ESCAPED;
          p = q + 2;
          continue;
        }
        this.fieldEnd = q;
        p = q + 1;
        mode = MODE_AFTER_QUOTE;
      }

      if (mode === MODE_AFTER_QUOTE) {
        if (p >= len) {
          if (!final) break;
          rec.add(this.fieldStart, this.fieldEnd, this.fieldFlags);
          this.emit(len);
          this.nextRecord(len);
          mode = MODE_FIELD_START;
          break;
        }
        const c = buf[p];
        if (c === COMMA) {
          rec.add(this.fieldStart, this.fieldEnd, this.fieldFlags);
          p++;
          mode = MODE_FIELD_START;
          continue;
        }
        if (c === LF) {
          rec.add(this.fieldStart, this.fieldEnd, this.fieldFlags);
          this.emit(p);
          p++;
          this.nextRecord(p);
          mode = MODE_FIELD_START;
          continue;
        }
        if (c === CR && (p + 1 >= len || buf[p + 1] === LF)) {
          if (p + 1 >= len && !final) break;
          rec.add(this.fieldStart, this.fieldEnd, this.fieldFlags);
          this.emit(p);
          p = Math.min(p + 2, len);
          this.nextRecord(p);
          mode = MODE_FIELD_START;
          continue;
        }
        this.fail(
          `unexpected ${describeByte(buf, p)} after the closing quote (expected a comma or a line end)`,
        );
        mode = MODE_SKIP_LINE;
        continue;
      }

      // MODE_SKIP_LINE: drop the rest of a bad record's line, then report it with its text.
      const nl = buf.indexOf(LF, p);
      if (nl < 0) {
        p = len;
        // Keep the record's start for the report, but not more than the report can show.
        if (this.pending === null || len - this.recStart > MAX_RAW_BYTES) {
          this.reportPending(len);
          this.recStart = len;
        }
        break;
      }
      this.reportPending(nl);
      p = nl + 1;
      this.nextRecord(p);
      mode = MODE_FIELD_START;
    }

    // p >= len, or more bytes are needed to decide.
    if (final) {
      if (mode === MODE_UNQUOTED) {
        rec.add(this.fieldStart, len, 0);
        this.emit(len);
        this.nextRecord(len);
      } else if (mode === MODE_FIELD_START && rec.count > 0) {
        rec.add(len, len, 0);
        this.emit(len);
        this.nextRecord(len);
      } else if (mode === MODE_QUOTED) {
        this.line = this.quoteLine;
        this.fail(`unterminated quoted field (opened on line ${this.quoteLine})`);
      }
      this.reportPending(len);
      this.recStart = len;
      mode = MODE_FIELD_START;
      p = len;
    } else if (mode !== MODE_SKIP_LINE && len - this.recStart > this.maxRecordBytes) {
      this.fail(`record is longer than ${this.maxRecordBytes} bytes (an unclosed quote?)`);
      this.reportPending(len);
      mode = MODE_SKIP_LINE;
      p = len;
    }
    this.pos = p;
    this.mode = mode;
  }

  /** The record ended with its line terminator at `end`, which has been consumed up to `next`. */
  private nextRecord(next: number): void {
    this.rec.count = 0;
    if (next > 0 && this.buf[next - 1] === LF) this.line++;
    this.recStart = next;
    this.recLine = this.line;
  }

  private emit(end: number): void {
    const rec = this.rec;
    rec.buf = this.buf;
    rec.line = this.recLine;
    rec.start = this.recStart;
    rec.end = end;
    if (this.recStart < this.utf8SlowUntil) {
      for (let i = 0; i < rec.count; i++) {
        if (!isUtf8(this.buf.subarray(rec.starts[i], rec.ends[i]))) {
          const column = i + 1;
          const err = new ImportRowError(`invalid UTF-8`, {
            line: rec.line,
            column,
            field: this.names?.[i] ?? null,
          });
          if (this.onError === undefined) throw err;
          this.onError(err, rec.raw());
          return;
        }
      }
    }
    this.onRecord(rec);
  }

  /**
   * A malformed record: throws without `onError`; else keeps the error until the rest of the
   * record's line has been skipped (MODE_SKIP_LINE), so that the report carries its text.
   */
  private fail(reason: string): void {
    const column = this.rec.count + 1;
    const err = new ImportRowError(reason, {
      line: this.line,
      column,
      field: this.names?.[column - 1] ?? null,
    });
    if (this.onError === undefined) throw err;
    this.rec.count = 0;
    this.pending = err;
  }

  /** Reports the pending error with the record's text up to `end`, and forgets the record. */
  private reportPending(end: number): void {
    const err = this.pending;
    if (err === null) return;
    this.pending = null;
    const raw = rawText(this.buf, this.recStart, end);
    this.recStart = end;
    this.onError!(err, raw);
  }
}

function stripBom(b: Buffer): Buffer {
  return b.length >= 3 && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf ? b.subarray(3) : b;
}

function rawText(buf: Buffer, start: number, end: number): string {
  let e = Math.min(end, start + MAX_RAW_CHARS * 4, buf.length);
  if (e > start && buf[e - 1] === CR) e--;
  const s = buf.toString("utf8", start, e);
  return s.length > MAX_RAW_CHARS ? s.slice(0, MAX_RAW_CHARS) : s;
}

function describeByte(buf: Buffer, at: number): string {
  const c = buf[at]!;
  if (c === QUOTE) return "quote";
  if (c === CR) return "carriage return";
  if (c >= 0x20 && c < 0x7f) return JSON.stringify(String.fromCharCode(c));
  return `byte 0x${c.toString(16).padStart(2, "0")}`;
}
