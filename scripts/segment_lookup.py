#!/usr/bin/env python3
"""A reference reader of Strata segments outside Node (docs/segment-format.md), standard library
only: looks keys up through the hash index, checks each record's CRC, prints one JSON line per key
with the event time and the row bytes (hex). Usage: segment_lookup.py FILE KEY..."""
import json
import struct
import sys
import zlib


def fmix32(h):
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    return h ^ (h >> 16)


def strata_hash64(data, seed):
    lo, hi = 0x811C9DC5 ^ seed, 0x050C5D1F ^ seed
    for b in data:
        lo = ((lo ^ b) * 0x01000193) & 0xFFFFFFFF
        hi = ((hi ^ b) * 0x0100019D) & 0xFFFFFFFF
    n = len(data)
    return fmix32(lo ^ n), fmix32(hi ^ (((n << 16) | (n >> 16)) & 0xFFFFFFFF))


def lookup(seg, key):
    if seg[:8] != b"STRATSEG" or struct.unpack_from("<I", seg, 4092)[0] != zlib.crc32(seg[:4092]):
        raise ValueError("bad header")
    # Versions 1 and 2 differ only in where records start (2 may put zeros before one), which a
    # lookup through the index does not see.
    if struct.unpack_from("<H", seg, 8)[0] not in (1, 2):
        raise ValueError("unsupported format version")
    seed, slots, max_probe = struct.unpack_from("<III", seg, 56)
    index_offset = struct.unpack_from("<I", seg, 148)[0]
    salt = int(seg[16:20].hex(), 16)
    lo, hi = strata_hash64(key, seed)
    s = lo & (slots - 1)
    for _ in range(max_probe):
        fp_lo, fp_hi, offset, length = struct.unpack_from("<IIII", seg, index_offset + 16 * s)
        if length == 0:
            return {"status": "absent"}
        if (fp_lo, fp_hi) == (lo, hi):
            seed_crc = (salt ^ ((offset * 0x9E3779B1) & 0xFFFFFFFF)) & 0xFFFFFFFF
            if zlib.crc32(seg[offset + 4 : offset + length], seed_crc) != struct.unpack_from("<I", seg, offset)[0]:
                return {"status": "corrupt"}
            flags, key_len, value_len, _, event_time = struct.unpack_from("<HHIIq", seg, offset + 4)
            if seg[offset + 24 : offset + 24 + key_len] == key:
                if flags & 1:
                    return {"status": "tombstone", "event_time_ms": event_time}
                value_at = offset + 24 + ((key_len + 7) & ~7)
                return {"status": "found", "event_time_ms": event_time, "row": seg[value_at : value_at + value_len].hex()}
        s = (s + 1) & (slots - 1)
    return {"status": "absent"}


if __name__ == "__main__":
    with open(sys.argv[1], "rb") as f:
        segment = f.read()
    for k in sys.argv[2:]:
        print(json.dumps({"key": k, **lookup(segment, k.encode("utf-8"))}, ensure_ascii=False))
