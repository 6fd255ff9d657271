// The parts of the segment format (src/format/segment-layout.ts is normative) that the addon's
// readers (strata_native.cc) and writers (csv_encode.cc) share: one copy of the record CRC, the
// key hash and the record framing, so the two sides cannot drift apart.
#ifndef STRATA_SEGMENT_FORMAT_H_
#define STRATA_SEGMENT_FORMAT_H_

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace strata {

constexpr uint32_t kHeaderBytes = 4096;
constexpr uint32_t kRecordHeaderBytes = 24;
constexpr uint32_t kTrailerBytes = 32;
constexpr uint32_t kMaxKeyBytes = 1024;
constexpr uint16_t kFlagTombstone = 1;
// MAX_SEGMENT_BYTES: every file stays under 2 GiB (u32 offsets on disk, int32 in lookups).
constexpr uint64_t kMaxSegmentBytes = (uint64_t(1) << 31) - 4096;

// CRC-32 tables (IEEE, zlib's), slicing-by-8; filled once per process by InitCrc, which also
// looks for the carry-less multiply (PCLMULQDQ) that CrcFold uses.
extern uint32_t crc_table[8][256];
extern bool crc_fold_ready;
void InitCrc();

// The running CRC `c` (pre- and post-inverted by the caller, as in zlib) over p[0..n), n a
// multiple of 16 and at least 64, by folding 64 bytes at a time with carry-less multiplies
// (Intel's "Fast CRC Computation for Generic Polynomials Using PCLMULQDQ"). About ten times the
// speed of slicing-by-8 on long runs; only when crc_fold_ready.
uint32_t CrcFold(const uint8_t* p, size_t n, uint32_t c);

inline uint32_t load32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);  // little-endian hosts only (checked at load in native.ts)
  return v;
}
inline uint16_t load16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
inline void store32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }

// zlib.crc32(bytes, seed) of p[0..n).
inline uint32_t Crc32(const uint8_t* p, size_t n, uint32_t seed) {
  uint32_t c = ~seed;
  if (n >= 64 && crc_fold_ready) {
    const size_t m = n & ~size_t(15);
    c = CrcFold(p, m, c);
    p += m;
    n -= m;
  }
  while (n >= 8) {
    uint32_t a = c ^ load32(p);
    c = crc_table[7][a & 0xff] ^ crc_table[6][(a >> 8) & 0xff] ^ crc_table[5][(a >> 16) & 0xff] ^
        crc_table[4][a >> 24] ^ crc_table[3][p[4]] ^ crc_table[2][p[5]] ^ crc_table[1][p[6]] ^ crc_table[0][p[7]];
    p += 8;
    n -= 8;
  }
  while (n--) c = crc_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
  return ~c;
}

// recordSeed(salt, offset): the initial CRC of the record at `offset` of a segment salted `salt`.
inline uint32_t RecordSeed(uint32_t salt, uint32_t offset) { return salt ^ (offset * 0x9e3779b1u); }

// ---- strata-hash64 (src/format/key-hash.ts) ----
inline uint32_t fmix32(uint32_t h) {
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

inline void Hash64(const uint8_t* p, uint32_t len, uint32_t seed, uint32_t* lo_out, uint32_t* hi_out) {
  uint32_t lo = 0x811c9dc5u ^ seed;
  uint32_t hi = 0x050c5d1fu ^ seed;
  for (uint32_t i = 0; i < len; i++) {
    lo = (lo ^ p[i]) * 0x01000193u;
    hi = (hi ^ p[i]) * 0x0100019du;
  }
  *lo_out = fmix32(lo ^ len);
  *hi_out = fmix32(hi ^ ((len << 16) | (len >> 16)));
}

inline uint32_t align8(uint32_t n) { return (n + 7) & ~7u; }

// recordLength(keyLen, valueLen).
inline uint32_t RecordLength(uint32_t key_len, uint32_t value_len) {
  return kRecordHeaderBytes + align8(key_len) + align8(value_len);
}

// recordPad(offset, length): zero bytes to put before a record starting at file offset `offset`,
// up to the next 64-byte line when that makes it span fewer lines and is at most an eighth of it.
constexpr uint32_t kLineBytes = 64;
constexpr uint32_t kMaxRecordPad = kLineBytes - 8;
inline uint32_t RecordPad(uint64_t offset, uint32_t length) {
  const uint32_t in_line = uint32_t(offset) & (kLineBytes - 1);
  const uint32_t pad = kLineBytes - in_line;
  if (in_line == 0 || uint64_t(pad) * 8 > length) return 0;
  const auto lines = [](uint64_t n) { return (n + kLineBytes - 1) / kLineBytes; };
  return lines(uint64_t(in_line) + length) > lines(length) ? pad : 0;
}

// Frames a live record whose key (at r + 24) and value (right after the key's 8-aligned end) are
// written, over zeroed padding: the header fields, then the CRC of [4, length) seeded for the
// record's file offset. SegmentEncoder.commit and seal in src/format/segment-encoder.ts do the same.
inline void FrameRecord(uint8_t* r, uint32_t length, uint32_t key_len, uint32_t value_len, int64_t event_time_ms,
                        uint32_t salt, uint32_t file_offset) {
  store32(r + 4, key_len << 16);  // flags 0 | keyLen
  store32(r + 8, value_len);
  store32(r + 12, 0);
  std::memcpy(r + 16, &event_time_ms, 8);
  store32(r, Crc32(r + 4, length - 4, RecordSeed(salt, file_offset)));
}

}  // namespace strata

#endif  // STRATA_SEGMENT_FORMAT_H_
