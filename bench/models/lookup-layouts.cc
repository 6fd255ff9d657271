// A model of Strata's single-key lookup, to price index layouts before changing the segment format
// (docs/benchmarks.md, "Lookups, session 6"). Not part of the build:
//   g++ -O2 -o /tmp/lookup-layouts bench/models/lookup-layouts.cc -lz && /tmp/lookup-layouts
// 1 M keys as separately allocated strings looked up in shuffled order, 160-byte records with a
// CRC-32 (zlib) and the key, 2^21 slots with linear probing. Each pass looks every key up once;
// the variants alternate within a round so that the machine's noise hits them alike.
#include <sys/mman.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <vector>

namespace {
constexpr uint32_t kKeys = 1000000, kSlots = 1u << 21, kMask = kSlots - 1, kRecord = 160, kKeyAt = 24;

uint64_t Hash(const char* p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ uint8_t(p[i])) * 1099511628211ull;
  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9ull;
  return h ^ (h >> 32);
}

// 2 MiB aligned, on 2 MiB pages or explicitly not.
template <typename T>
T* Region(size_t bytes, bool huge) {
  const size_t align = size_t(2) << 20;
  auto p = reinterpret_cast<uintptr_t>(
      mmap(nullptr, bytes + align, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  auto a = reinterpret_cast<void*>((p + align - 1) & ~(align - 1));
  madvise(a, bytes, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
  std::memset(a, 0, bytes);
  return static_cast<T*>(a);
}

struct Keys {
  std::vector<char*> text;
  std::vector<uint32_t> length;
};

bool Matches(const uint8_t* r, const char* key, uint32_t n) {
  return ::crc32(0, r + 4, kRecord - 4) == *reinterpret_cast<const uint32_t*>(r) &&
         std::memcmp(r + kKeyAt, key, n) == 0;
}
}  // namespace

int main() {
  Keys keys;
  for (uint32_t i = 0; i < kKeys; i++) {
    char b[32];
    const int n = std::snprintf(b, sizeof b, "user:%u", i);
    keys.text.push_back(static_cast<char*>(std::malloc(40)));
    std::memcpy(keys.text.back(), b, n);
    keys.length.push_back(n);
  }
  auto fill = [&](uint8_t* r, uint32_t i) {
    std::memcpy(r + kKeyAt, keys.text[i], keys.length[i]);
    for (uint32_t j = 64; j < kRecord; j++) r[j] = uint8_t(j * i);
    *reinterpret_cast<uint32_t*>(r) = ::crc32(0, r + 4, kRecord - 4);
  };
  // Write order (record i at i * kRecord), on 4 KiB and on 2 MiB pages.
  uint8_t* data[2] = {Region<uint8_t>(size_t(kKeys) * kRecord, false), Region<uint8_t>(size_t(kKeys) * kRecord, true)};
  // Slots of 16 bytes (fingerprint lo, hi, offset, length), 8 (hi, offset / 8 + 1) and 4 (7-bit tag, offset / 8 + 1).
  uint32_t* slots16[2] = {Region<uint32_t>(size_t(kSlots) * 16, false), Region<uint32_t>(size_t(kSlots) * 16, true)};
  uint32_t* slots8 = Region<uint32_t>(size_t(kSlots) * 8, false);
  uint32_t* slots4 = Region<uint32_t>(size_t(kSlots) * 4, false);
  std::vector<uint32_t> record_at(kSlots, UINT32_MAX);
  for (uint32_t i = 0; i < kKeys; i++) {
    for (uint8_t* d : data) fill(d + size_t(i) * kRecord, i);
    const uint64_t h = Hash(keys.text[i], keys.length[i]);
    const uint32_t lo = uint32_t(h), hi = uint32_t(h >> 32), unit = i * (kRecord / 8) + 1;
    uint32_t s = lo & kMask;
    while (slots16[0][s * 4 + 3] != 0) s = (s + 1) & kMask;
    for (uint32_t* t : slots16) t[s * 4] = lo, t[s * 4 + 1] = hi, t[s * 4 + 2] = i * kRecord, t[s * 4 + 3] = kRecord;
    slots8[s * 2] = hi, slots8[s * 2 + 1] = unit;
    slots4[s] = (hi & 0x7f) << 25 | unit;
    record_at[s] = i;
  }
  // Slot order: the records of slots 0, 1, 2... in turn, found through a directory per 64 slots.
  struct Dir {
    uint32_t first;
    uint32_t offset;
    uint64_t used;
  };
  std::vector<Dir> dir(kSlots / 64);
  uint8_t* ordered = Region<uint8_t>(size_t(kKeys) * kRecord, false);
  for (uint32_t s = 0, rank = 0; s < kSlots; s++) {
    if (s % 64 == 0) dir[s / 64] = {rank, rank * kRecord, 0};
    if (record_at[s] == UINT32_MAX) continue;
    fill(ordered + size_t(rank) * kRecord, record_at[s]);
    dir[s / 64].used |= 1ull << (s % 64);
    rank++;
  }

  // Records in the slots themselves (fixed-width rows): the slot's address is the record's.
  uint8_t* inline_table = Region<uint8_t>(size_t(kSlots) * kRecord, false);
  for (uint32_t s = 0; s < kSlots; s++)
    if (record_at[s] != UINT32_MAX) fill(inline_table + size_t(s) * kRecord, record_at[s]);

  std::vector<uint32_t> order(kKeys);
  for (uint32_t i = 0; i < kKeys; i++) order[i] = i;
  std::shuffle(order.begin(), order.end(), std::mt19937(1));
  volatile uint64_t sink = 0;
  // One pass: `find` returns the record for the key copied into kb (its hash in h), or null.
  auto pass = [&](const std::function<const uint8_t*(const char*, uint32_t, uint64_t, uint32_t)>& find) {
    uint64_t found = 0;
    for (uint32_t i = 0; i < kKeys; i++) {
      char kb[64];
      const uint32_t n = keys.length[order[i]];
      std::memcpy(kb, keys.text[order[i]], n);
      if (find(kb, n, Hash(kb, n), order[i]) != nullptr) found++;
    }
    sink += found;
  };
  auto by16 = [&](int huge_slots, int huge_data) {
    return [&, huge_slots, huge_data](const char* kb, uint32_t n, uint64_t h, uint32_t) -> const uint8_t* {
      const uint32_t lo = uint32_t(h), hi = uint32_t(h >> 32);
      for (uint32_t s = lo & kMask;; s = (s + 1) & kMask) {
        const uint32_t* w = slots16[huge_slots] + s * 4;
        if (w[3] == 0) return nullptr;
        if (w[0] == lo && w[1] == hi) return Matches(data[huge_data] + w[2], kb, n) ? data[huge_data] + w[2] : nullptr;
      }
    };
  };
  auto by8 = [&](const char* kb, uint32_t n, uint64_t h, uint32_t) -> const uint8_t* {
    for (uint32_t s = uint32_t(h) & kMask;; s = (s + 1) & kMask) {
      const uint32_t* w = slots8 + s * 2;
      if (w[1] == 0) return nullptr;
      const uint8_t* r = data[0] + size_t(w[1] - 1) * 8;
      if (w[0] == uint32_t(h >> 32) && Matches(r, kb, n)) return r;
    }
  };
  auto by4 = [&](const char* kb, uint32_t n, uint64_t h, uint32_t) -> const uint8_t* {
    for (uint32_t s = uint32_t(h) & kMask;; s = (s + 1) & kMask) {
      const uint32_t w = slots4[s];
      if (w == 0) return nullptr;
      const uint8_t* r = data[0] + size_t((w & 0x1ffffff) - 1) * 8;
      if (w >> 25 == (uint32_t(h >> 32) & 0x7f) && Matches(r, kb, n)) return r;
    }
  };
  auto by_slot_order = [&](const char* kb, uint32_t n, uint64_t h, uint32_t) -> const uint8_t* {
    const uint32_t s = uint32_t(h) & kMask;
    const Dir& d = dir[s / 64];
    if ((d.used >> (s % 64) & 1) == 0) return nullptr;
    const uint32_t rank = d.first + __builtin_popcountll(d.used & ((1ull << (s % 64)) - 1));
    for (uint32_t r = rank; r < kKeys && r < rank + 64; r++)  // the chain runs on in the next records
      if (Matches(ordered + size_t(r) * kRecord, kb, n)) return ordered + size_t(r) * kRecord;
    return nullptr;
  };
  auto in_slots = [&](const char* kb, uint32_t n, uint64_t h, uint32_t) -> const uint8_t* {
    for (uint32_t s = uint32_t(h) & kMask;; s = (s + 1) & kMask) {
      const uint8_t* r = inline_table + size_t(s) * kRecord;
      if (*reinterpret_cast<const uint32_t*>(r) == 0) return nullptr;
      if (Matches(r, kb, n)) return r;
    }
  };
  // The lower bound: the record's address without an index, so its miss overlaps the key's.
  auto no_index = [&](const char* kb, uint32_t n, uint64_t, uint32_t i) -> const uint8_t* {
    return Matches(data[0] + size_t(i) * kRecord, kb, n) ? data[0] + size_t(i) * kRecord : nullptr;
  };
  const std::vector<std::pair<const char*, std::function<const uint8_t*(const char*, uint32_t, uint64_t, uint32_t)>>>
      variants = {{"16 B slots", by16(0, 0)},
                  {"8 B slots", by8},
                  {"4 B slots", by4},
                  {"slot order + directory", by_slot_order},
                  {"records in the slots", in_slots},
                  {"no index (bound)", no_index},
                  {"16 B, slots on 2 MiB pages", by16(1, 0)},
                  {"16 B, data on 2 MiB pages", by16(0, 1)},
                  {"16 B, both on 2 MiB pages", by16(1, 1)}};
  std::vector<std::vector<double>> ns(variants.size());
  for (int round = 0; round < 7; round++)
    for (size_t v = 0; v < variants.size(); v++) {
      const auto t0 = std::chrono::steady_clock::now();
      pass(variants[v].second);
      ns[v].push_back(std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() / kKeys);
    }
  for (size_t v = 0; v < variants.size(); v++) {
    std::sort(ns[v].begin(), ns[v].end());
    std::printf("%-28s median %4.0f ns a lookup (%.0f-%.0f)\n", variants[v].first, ns[v][3], ns[v][0], ns[v][6]);
  }
  std::printf("found %llu of %u per pass\n", (unsigned long long)(sink / 7 / variants.size()), kKeys);
}
