/**
 * Decodes GetFeaturesRequest by hand: faster than the generic decoder on the hot path, and strict
 * where protobufjs is lenient (it turns invalid UTF-8 into U+FFFD, which would look up a key that
 * was never sent). A malformed request decodes to `{ invalid }` instead of throwing, so the handler
 * answers INVALID_ARGUMENT rather than grpc-js answering INTERNAL.
 *
 *   GetFeaturesRequest := 1 table | 2 keys* | 3 features* | 4 request_id (u64) | 5 version (u64) | 6 encoding
 */
import { isAscii, isUtf8 } from "node:buffer";
import type { KeyBatch } from "../format/key-batch.js";
import { Slab } from "./slab.js";

const slab = new Slab();

export interface GetFeaturesRequest {
  table: string;
  /** Byte ranges in the request itself: no string per key. */
  keys: KeyBatch;
  features: string[];
  /** request_id as two u32 halves, echoed exactly. */
  requestIdLo: number;
  requestIdHi: number;
  version: number;
  encoding: number;
  /** Set when the bytes are not a valid request: the reason. */
  invalid?: string;
}

class Malformed extends Error {}

const NO_BOUNDS = new Uint32Array(0);

/**
 * The handler is done with `req`: its key bounds go back to be reused (without this, every request
 * took a few KiB of a fresh slab, external memory that kept V8 collecting). Call it only once
 * nothing reads the request's keys any more; afterwards `req` has none, and a second call does nothing.
 */
export function releaseGetFeaturesRequest(req: GetFeaturesRequest): void {
  slab.release(req.keys.bounds);
  req.keys = { bytes: req.keys.bytes, bounds: NO_BOUNDS, count: 0 };
}

export function decodeGetFeaturesRequest(buf: Buffer): GetFeaturesRequest {
  const req: GetFeaturesRequest = {
    table: "",
    // A key takes at least 2 bytes of the request (tag and length): buf.length bounds always fit.
    keys: { bytes: buf, bounds: slab.uint32s(Math.max(2, buf.length)), count: 0 },
    features: [],
    requestIdLo: 0,
    requestIdHi: 0,
    version: 0,
    encoding: 0,
  };
  let pos = 0;
  // Varints are read into these two halves (a u64 as lo + hi).
  let lo = 0;
  let hi = 0;
  const readVarint = (): void => {
    lo = 0;
    hi = 0;
    for (let shift = 0; ; shift += 7) {
      if (pos >= buf.length || shift >= 70) throw new Malformed("truncated varint");
      const b = buf[pos++]!;
      if (shift < 28) lo |= (b & 0x7f) << shift;
      else if (shift === 28) {
        lo |= (b & 0x0f) << 28;
        hi |= (b & 0x7f) >>> 4;
      } else hi |= (b & 0x7f) << (shift - 32);
      if (b < 0x80) break;
    }
    lo >>>= 0;
    hi >>>= 0;
  };
  /** Reads a length-delimited UTF-8 field and returns its start (it ends at `pos`). */
  const readUtf8 = (what: string): number => {
    readVarint();
    if (hi !== 0 || pos + lo > buf.length) throw new Malformed(`truncated ${what}`);
    const start = pos;
    pos += lo;
    for (let i = start; i < pos; i++) {
      if (buf[i]! >= 0x80) {
        if (!isUtf8(buf.subarray(start, pos))) throw new Malformed(`${what} is not valid UTF-8`);
        break;
      }
    }
    return start;
  };
  const readString = (what: string): string => buf.toString("utf8", readUtf8(what), pos);
  const keys = req.keys;
  const bounds = keys.bounds;
  const end = buf.length;
  const addKey = (start: number): void => {
    bounds[keys.count * 2] = start;
    bounds[keys.count * 2 + 1] = pos;
    keys.count++;
  };
  /** Reads the keys of up to 127 bytes from `at` on (`checked`: each ASCII), adds them, and returns where they end. */
  const keyRun = (at: number, checked: boolean): number => {
    let count = keys.count;
    while (at + 1 < end && buf[at] === 0x12) {
      const length = buf[at + 1]!;
      const start = at + 2;
      const stop = start + length;
      if (length >= 0x80 || stop > end) break;
      if (checked) {
        let high = 0;
        for (let i = start; i < stop; i++) high |= buf[i]!;
        if (high >= 0x80) break;
      }
      bounds[count * 2] = start;
      bounds[count * 2 + 1] = stop;
      count++;
      at = stop;
    }
    keys.count = count;
    return at;
  };
  let asciiRuns = true;
  try {
    while (pos < end) {
      // Keys are most of a request: a run of keys of up to 127 ASCII bytes each is read by keyRun,
      // without the general path's calls a field (they took half the time at 100 keys a request).
      const counted = keys.count;
      let at = keyRun(pos, !asciiRuns);
      // Its tags and lengths are below 0x80 too, so the run is ASCII exactly when its keys are: one
      // native check instead of a loop over every byte. If it is not, the run is read again, up to
      // the first key that is not ASCII, which the general path then checks; and every later run
      // is checked key by key, since reading the rest unchecked after each such key would take
      // time quadratic in the keys.
      if (asciiRuns && at > pos && !isAscii(buf.subarray(pos, at))) {
        asciiRuns = false;
        keys.count = counted;
        at = keyRun(pos, true);
      }
      pos = at;
      if (pos >= end) break;
      readVarint();
      const field = (lo >>> 3) | (hi << 29);
      const wire = lo & 7;
      switch (wire === 2 ? field : wire === 0 ? -field : 0) {
        case 1:
          req.table = readString("table");
          break;
        case 2:
          addKey(readUtf8("key"));
          break;
        case 3:
          req.features.push(readString("feature name"));
          break;
        case -4:
          readVarint();
          req.requestIdLo = lo;
          req.requestIdHi = hi;
          break;
        case -5:
          readVarint();
          if (hi >= 0x200000) throw new Malformed("version out of range");
          req.version = hi * 2 ** 32 + lo;
          break;
        case -6:
          readVarint();
          req.encoding = lo;
          break;
        default:
          skipField(wire);
      }
    }
  } catch (err) {
    if (err instanceof Malformed) req.invalid = `Malformed GetFeaturesRequest: ${err.message}`;
    else throw err;
  }
  return req;

  function skipField(wire: number): void {
    switch (wire) {
      case 0:
        readVarint();
        return;
      case 1:
        pos += 8;
        break;
      case 2:
        readVarint();
        pos += lo;
        break;
      case 5:
        pos += 4;
        break;
      default:
        throw new Malformed(`wire type ${wire}`);
    }
    if (pos > buf.length) throw new Malformed("truncated field");
  }
}
