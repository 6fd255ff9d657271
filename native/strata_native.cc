// strata_native: what the read path cannot do fast enough in JS. Exports:
//
//   map(path)            maps a segment file read-only as a SharedArrayBuffer. A Buffer over
//                        external memory (what mmap-io returns) is charged to V8's external-memory
//                        budget, and mapping a 1 GiB file forced a full GC each time ("external
//                        memory pressure": 130-200 ms with a large heap, measured in bench/). A
//                        shared backing store is not charged per isolate, so a mapping costs the
//                        mmap(2) call and nothing more. The pages are unmapped when the last view
//                        of the buffer is collected.
//   prepare(...)         packs a version's segments once for the lookups below.
//   locateBatch(...)     looks up a batch of keys in one version, newest segment first: hash,
//                        probe, bounds and CRC check of every record it reads, key compare,
//                        tombstone. The algorithm of SegmentView.find / VersionSnapshot.locate in
//                        src/format and src/storage (the reference; tests compare the two), staged
//                        so that the cache misses of many keys overlap: every key's index slot is
//                        prefetched, then every candidate record, then they are read.
//   locateOne(...)       the same for one key given as a string.
//   measureRows(...), writeRows(...)
//                        the rows of a GetFeatures/ScanTable response, sized and then written
//                        straight from the mapped records (src/serve/response-encoder.ts has the
//                        message grammar; tests decode the result with protobufjs).
//   crc32Async(...)      a whole segment's CRC on libuv's thread pool, for verifying before a swap.
//   encodeCsvLines(...)  the CSV import's hot loop, in csv_encode.cc.
//   placeIndexEntries(...) a segment index build's placement loop, in segment_index.cc.
//   crc32(view, seed)    zlib.crc32, faster (carry-less multiply), in checksum.cc.

#include <node.h>
#include <v8.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "checksum.h"
#include "csv_encode.h"
#include "segment_format.h"
#include "segment_index.h"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

using v8::ArrayBufferView;
using v8::Context;
using v8::Float64Array;
using v8::FunctionCallbackInfo;
using v8::Int32Array;
using v8::Isolate;
using v8::Local;
using v8::Object;
using v8::SharedArrayBuffer;
using v8::Uint32Array;
using v8::Value;

// The record format's constants, CRC, key hash: segment_format.h (shared with csv_encode.cc).
using strata::align8;
using strata::Crc32;
using strata::Hash64;
using strata::kFlagTombstone;
using strata::kHeaderBytes;
using strata::kRecordHeaderBytes;
using strata::load16;
using strata::load32;

// Per-segment parameters, as packed by src/storage/native.ts (stride kParamStride u32s).
enum Param { kIndexOffset, kSlotCount, kHashSeed, kMaxProbe, kSalt, kDataEnd, kParamStride = 8 };

// Results, as read by src/storage/native.ts (stride kOutStride i32s per key).
enum Status { kAbsent = 0, kFound = 1, kCorrupt = 2 };
enum Out { kOutStatus, kOutSegment, kOutValueOffset, kOutValueLength, kOutStride };

struct Segment {
  const uint8_t* bytes;
  size_t length;
  const uint32_t* slots;
  uint32_t mask;
  uint32_t seed;
  uint32_t max_probe;
  uint32_t salt;
  uint32_t data_end;
};

// Bounds and CRC of one record: SegmentView.recordIsIntact.
inline bool RecordIsIntact(const Segment& s, uint32_t offset, uint32_t length) {
  if (offset < kHeaderBytes || (offset & 7) != 0 || length < kRecordHeaderBytes ||
      uint64_t(offset) + length > s.data_end)
    return false;
  const uint8_t* r = s.bytes + offset;
  if (uint64_t(kRecordHeaderBytes) + align8(load16(r + 6)) + align8(load32(r + 8)) != length) return false;
  uint32_t seed = s.salt ^ (offset * 0x9e3779b1u);
  return Crc32(r + 4, length - 4, seed) == load32(r);
}

inline bool KeyEquals(const Segment& s, uint32_t offset, const uint8_t* key, uint32_t len) {
  const uint8_t* r = s.bytes + offset;
  return load16(r + 6) == len && std::memcmp(r + kRecordHeaderBytes, key, len) == 0;
}

template <typename T>
T* DataOf(Local<Value> v) {
  Local<ArrayBufferView> view = v.As<ArrayBufferView>();
  return reinterpret_cast<T*>(static_cast<uint8_t*>(view->Buffer()->Data()) + view->ByteOffset());
}

void Throw(Isolate* isolate, const char* message) {
  isolate->ThrowException(v8::Exception::TypeError(v8::String::NewFromUtf8(isolate, message).ToLocalChecked()));
}

// map(path: string): SharedArrayBuffer
void Map(const FunctionCallbackInfo<Value>& args) {
  Isolate* isolate = args.GetIsolate();
  if (args.Length() < 1 || !args[0]->IsString()) return Throw(isolate, "map(path): path must be a string");
  v8::String::Utf8Value path(isolate, args[0]);
  int fd = open(*path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    isolate->ThrowException(node::ErrnoException(isolate, errno, "open", nullptr, *path));
    return;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    isolate->ThrowException(node::ErrnoException(isolate, e, "fstat", nullptr, *path));
    return;
  }
  size_t size = static_cast<size_t>(st.st_size);
  if (size == 0) {
    close(fd);
    args.GetReturnValue().Set(SharedArrayBuffer::New(isolate, 0));
    return;
  }
  void* data = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  int e = errno;
  close(fd);  // the mapping keeps the file
  if (data == MAP_FAILED) {
    isolate->ThrowException(node::ErrnoException(isolate, e, "mmap", nullptr, *path));
    return;
  }
  // Lookups touch a record here and there: read-ahead around them would pull in the whole file.
  madvise(data, size, MADV_RANDOM);
  auto store = SharedArrayBuffer::NewBackingStore(
      data, size, [](void* d, size_t n, void*) { munmap(d, n); }, nullptr);
  args.GetReturnValue().Set(SharedArrayBuffer::New(isolate, std::move(store)));
}

// A version's segments, checked and packed once (prepare), then used by every batch (locateBatch).
// The JS BatchLocator that holds the handle also holds the segment buffers, so the pointers here
// live as long as the handle can be used.
struct Version {
  std::vector<Segment> segments;  // probe order, newest first
  // locateOne's results (a kOutStride Int32Array and a 1-element Float64Array, from prepare).
  v8::Global<Int32Array> one_out_array;
  v8::Global<Float64Array> one_time_array;
  int32_t* one_out = nullptr;
  double* one_time = nullptr;
};

// prepare(segments: Uint8Array[], params: Uint32Array, oneOut: Int32Array, oneTime: Float64Array): External
void Prepare(const FunctionCallbackInfo<Value>& args) {
  Isolate* isolate = args.GetIsolate();
  Local<Context> context = isolate->GetCurrentContext();
  if (args.Length() < 4 || !args[0]->IsArray() || !args[1]->IsUint32Array() || !args[2]->IsInt32Array() ||
      !args[3]->IsFloat64Array() || args[2].As<ArrayBufferView>()->ByteLength() < kOutStride * 4 ||
      args[3].As<ArrayBufferView>()->ByteLength() < 8)
    return Throw(isolate, "prepare(segments, params, oneOut, oneTime): bad arguments");
  Local<v8::Array> seg_array = args[0].As<v8::Array>();
  const uint32_t nseg = seg_array->Length();
  if (args[1].As<ArrayBufferView>()->ByteLength() < size_t(nseg) * kParamStride * 4)
    return Throw(isolate, "prepare: params too short");
  const uint32_t* params = DataOf<uint32_t>(args[1]);
  auto version = new Version();
  version->segments.resize(nseg);
  for (uint32_t s = 0; s < nseg; s++) {
    Local<Value> v;
    const uint32_t* p = params + s * kParamStride;
    Segment& g = version->segments[s];
    bool ok = seg_array->Get(context, s).ToLocal(&v) && v->IsUint8Array();
    if (ok) {
      g.bytes = DataOf<uint8_t>(v);
      g.length = v.As<ArrayBufferView>()->ByteLength();
      // The parameters come from a header SegmentView already checked; re-check what indexing relies on.
      ok = p[kSlotCount] != 0 && (p[kSlotCount] & (p[kSlotCount] - 1)) == 0 &&
           uint64_t(p[kIndexOffset]) + uint64_t(p[kSlotCount]) * 16 <= g.length && p[kDataEnd] <= g.length &&
           (p[kIndexOffset] & 3) == 0 && (reinterpret_cast<uintptr_t>(g.bytes) & 3) == 0;
    }
    if (!ok) {
      delete version;
      return Throw(isolate, "prepare: segment is not a Uint8Array or its parameters are out of range");
    }
    g.slots = reinterpret_cast<const uint32_t*>(g.bytes + p[kIndexOffset]);
    g.mask = p[kSlotCount] - 1;
    g.seed = p[kHashSeed];
    g.max_probe = p[kMaxProbe];
    g.salt = p[kSalt];
    g.data_end = p[kDataEnd];
  }
  version->one_out_array.Reset(isolate, args[2].As<Int32Array>());
  version->one_time_array.Reset(isolate, args[3].As<Float64Array>());
  version->one_out = DataOf<int32_t>(args[2]);
  version->one_time = DataOf<double>(args[3]);
  Local<v8::External> handle = v8::External::New(isolate, version);
  // Freed with the handle: a weak global is how V8 tells of that (the callback may not touch it).
  struct Holder {
    v8::Global<v8::External> handle;
    Version* version;
  };
  auto holder = new Holder{v8::Global<v8::External>(isolate, handle), version};
  holder->handle.SetWeak(
      holder,
      [](const v8::WeakCallbackInfo<Holder>& info) {
        Holder* h = info.GetParameter();
        h->handle.Reset();
        delete h->version;
        delete h;
      },
      v8::WeakCallbackType::kParameter);
  args.GetReturnValue().Set(handle);
}

// A batch is looked up kChunk keys at a time and, within a chunk, segment by segment as a
// software pipeline over groups of kGroup keys: step t prefetches the index slots of group t,
// reads group t-2's slots (prefetched two steps ago) and prefetches their records, and checks
// group t-3's records (CRC, key). Misses are requested a little at a time, ahead of their use,
// instead of all at once: with every record of 32 keys requested together, the core's miss queue
// filled and the CRC work waited for it. In process, groups of 4 look 100 random keys of 256 B up
// in 15 µs instead of 20 (groups of 8: 17, 16: 19.5). A slot's miss gets two steps, a record's
// one: 3-5% faster than one each in five alternated runs (a slot's record cannot be asked for
// before the slot arrives; the CRC reads a record's lines in order, so one step is enough).
constexpr uint32_t kChunk = 128;
constexpr uint32_t kGroup = 4;
constexpr uint32_t kNone = 0xffffffffu;

struct ChunkState {
  uint32_t lo[kChunk], hi[kChunk], seed_of[kChunk], cand[kChunk];
  bool done[kChunk];
  uint32_t open[kChunk];  // keys not yet answered by a newer segment
};

// Stage 1: hash (if this segment's seed differs) and prefetch each key's home slot.
inline void PrefetchSlots(const Segment& g, ChunkState& st, const uint8_t* keys, const uint32_t* bounds,
                          const uint32_t* open, uint32_t n) {
  for (uint32_t j = 0; j < n; j++) {
    const uint32_t i = open[j];
    if (st.seed_of[i] != g.seed) {
      Hash64(keys + bounds[2 * i], bounds[2 * i + 1] - bounds[2 * i], g.seed, &st.lo[i], &st.hi[i]);
      st.seed_of[i] = g.seed;
    }
    __builtin_prefetch(g.slots + (st.lo[i] & g.mask) * 4);
  }
}

// Stage 2: find the first slot whose fingerprint matches; prefetch its whole record.
inline void PrefetchRecords(const Segment& g, ChunkState& st, const uint32_t* open, uint32_t n) {
  for (uint32_t j = 0; j < n; j++) {
    const uint32_t i = open[j];
    st.cand[i] = kNone;
    uint32_t slot = st.lo[i] & g.mask;
    for (uint32_t probe = 0; probe < g.max_probe; probe++, slot = (slot + 1) & g.mask) {
      const uint32_t* w = g.slots + slot * 4;
      if (w[3] == 0) break;
      if (w[0] == st.lo[i] && w[1] == st.hi[i]) {
        st.cand[i] = slot;
        if (uint64_t(w[2]) + w[3] <= g.length)
          for (uint32_t at = 0; at < w[3]; at += 64) __builtin_prefetch(g.bytes + w[2] + at);
        break;
      }
    }
  }
}

// Stage 3: check and compare the candidates; on a fingerprint collision, probe on from there.
inline void CheckRecords(const Segment& g, int32_t s, ChunkState& st, const uint8_t* keys, const uint32_t* bounds,
                         const uint32_t* open, uint32_t n, int32_t* out, double* times) {
  for (uint32_t j = 0; j < n; j++) {
    const uint32_t i = open[j];
    if (st.cand[i] == kNone) continue;
    const uint8_t* key = keys + bounds[2 * i];
    const uint32_t key_len = bounds[2 * i + 1] - bounds[2 * i];
    uint32_t slot = st.cand[i];
    uint32_t probe = (slot - (st.lo[i] & g.mask)) & g.mask;
    for (; probe < g.max_probe; probe++, slot = (slot + 1) & g.mask) {
      const uint32_t* w = g.slots + slot * 4;
      const uint32_t length = w[3];
      if (length == 0) break;
      if (w[0] != st.lo[i] || w[1] != st.hi[i]) continue;
      const uint32_t offset = w[2];
      int32_t* o = out + i * kOutStride;
      if (!RecordIsIntact(g, offset, length)) {
        o[kOutStatus] = kCorrupt;
        o[kOutSegment] = s;
        st.done[i] = true;
        break;
      }
      if (!KeyEquals(g, offset, key, key_len)) continue;
      st.done[i] = true;
      const uint8_t* r = g.bytes + offset;
      if (load16(r + 4) & kFlagTombstone) break;  // deleted: absent, and older segments are not asked
      o[kOutStatus] = kFound;
      o[kOutSegment] = s;
      o[kOutValueOffset] = int32_t(offset + kRecordHeaderBytes + align8(load16(r + 6)));
      o[kOutValueLength] = int32_t(load32(r + 8));
      int32_t time_hi;
      std::memcpy(&time_hi, r + 20, 4);
      times[i] = double(time_hi) * 4294967296.0 + double(load32(r + 16));
      break;
    }
  }
}

void LocateChunk(const Version& v, const uint8_t* keys, const uint32_t* bounds, uint32_t count, int32_t* out,
                 double* times) {
  ChunkState st;
  const uint32_t nseg = uint32_t(v.segments.size());
  for (uint32_t i = 0; i < count; i++) {
    int32_t* o = out + i * kOutStride;
    o[kOutStatus] = kAbsent;
    o[kOutSegment] = -1;
    o[kOutValueOffset] = 0;
    o[kOutValueLength] = 0;
    times[i] = 0;
    st.done[i] = false;
    if (nseg > 0) Hash64(keys + bounds[2 * i], bounds[2 * i + 1] - bounds[2 * i], v.segments[0].seed, &st.lo[i], &st.hi[i]);
    st.seed_of[i] = nseg > 0 ? v.segments[0].seed : 0;
  }
  for (uint32_t s = 0; s < nseg; s++) {
    const Segment& g = v.segments[s];
    uint32_t n = 0;
    for (uint32_t i = 0; i < count; i++)
      if (!st.done[i]) st.open[n++] = i;
    if (n == 0) break;
    const uint32_t groups = (n + kGroup - 1) / kGroup;
    const auto size = [&](uint32_t k) { return n - k * kGroup < kGroup ? n - k * kGroup : kGroup; };
    for (uint32_t t = 0; t < groups + 3; t++) {
      if (t < groups) PrefetchSlots(g, st, keys, bounds, st.open + t * kGroup, size(t));
      if (t >= 2 && t - 2 < groups) PrefetchRecords(g, st, st.open + (t - 2) * kGroup, size(t - 2));
      if (t >= 3) CheckRecords(g, int32_t(s), st, keys, bounds, st.open + (t - 3) * kGroup, size(t - 3), out, times);
    }
  }
}

// locateBatch(version: External, keys: Uint8Array, bounds: Uint32Array, count: number,
//             out: Int32Array, eventTimes: Float64Array): void
// Key i is keys[bounds[2i], bounds[2i+1]).
void LocateBatch(const FunctionCallbackInfo<Value>& args) {
  Isolate* isolate = args.GetIsolate();
  if (args.Length() < 6 || !args[0]->IsExternal() || !args[1]->IsUint8Array() || !args[2]->IsUint32Array() ||
      !args[3]->IsUint32() || !args[4]->IsInt32Array() || !args[5]->IsFloat64Array())
    return Throw(isolate, "locateBatch: bad arguments");
  const Version& version = *static_cast<Version*>(args[0].As<v8::External>()->Value());
  const uint32_t count = args[3].As<v8::Uint32>()->Value();
  const uint8_t* keys = DataOf<uint8_t>(args[1]);
  const size_t keys_length = args[1].As<ArrayBufferView>()->ByteLength();
  const uint32_t* bounds = DataOf<uint32_t>(args[2]);
  int32_t* out = DataOf<int32_t>(args[4]);
  double* times = DataOf<double>(args[5]);
  if (args[2].As<ArrayBufferView>()->ByteLength() < size_t(count) * 8 ||
      args[4].As<ArrayBufferView>()->ByteLength() < size_t(count) * kOutStride * 4 ||
      args[5].As<ArrayBufferView>()->ByteLength() < size_t(count) * 8)
    return Throw(isolate, "locateBatch: arrays too short");
  for (uint32_t i = 0; i < count; i++)
    if (bounds[2 * i] > bounds[2 * i + 1] || bounds[2 * i + 1] > keys_length)
      return Throw(isolate, "locateBatch: key bounds out of range");
  for (uint32_t first = 0; first < count; first += kChunk) {
    const uint32_t n = count - first < kChunk ? count - first : kChunk;
    LocateChunk(version, keys, bounds + 2 * first, n, out + first * kOutStride, times + first);
  }
}

// locateOne(version: External, key: string): status
// One key, with results in the arrays given to prepare: two arguments and no typed arrays to
// unwrap, for callers that look keys up one at a time.
void LocateOne(const FunctionCallbackInfo<Value>& args) {
  Isolate* isolate = args.GetIsolate();
  if (args.Length() < 2 || !args[0]->IsExternal() || !args[1]->IsString())
    return Throw(isolate, "locateOne(version, key): bad arguments");
  Version& version = *static_cast<Version*>(args[0].As<v8::External>()->Value());
  Local<v8::String> key = args[1].As<v8::String>();
  uint8_t stack[512];
  std::vector<uint8_t> heap;
  uint8_t* bytes = stack;
  int length = key->Length();
  // Keys are mostly ASCII, where the one-byte copy is the UTF-8 bytes: one pass over the string
  // instead of Utf8Length's and WriteUtf8's two (a quarter of a lookup's work when it hits the cache).
  bool ascii = false;
  if (key->IsOneByte() && size_t(length) <= sizeof(stack)) {
    key->WriteOneByte(isolate, bytes, 0, length, v8::String::NO_NULL_TERMINATION);
    uint8_t high = 0;
    for (int i = 0; i < length; i++) high |= bytes[i];
    ascii = high < 0x80;
  }
  if (!ascii) {
    length = key->Utf8Length(isolate);
    if (size_t(length) > sizeof(stack)) {
      heap.resize(length);
      bytes = heap.data();
    }
    key->WriteUtf8(isolate, reinterpret_cast<char*>(bytes), length, nullptr,
                   v8::String::NO_NULL_TERMINATION | v8::String::REPLACE_INVALID_UTF8);
  }
  const uint32_t bounds[2] = {0, uint32_t(length)};
  LocateChunk(version, bytes, bounds, 1, version.one_out, version.one_time);
  args.GetReturnValue().Set(version.one_out[kOutStatus]);
}

// ---- response rows (src/serve/response-encoder.ts) ----
// Row statuses (proto RowStatus) and the feature kinds and plan layout of ResponsePlan.
enum RowStatus { kRowFound = 1, kRowNotFound = 2, kRowOutsideMaxAge = 3, kRowDataLoss = 4 };
// kMissing: a feature the version was written without (added to the config since): always null.
enum Kind { kF32, kF64, kI64, kBool, kString, kBytes, kVector, kMissing };
enum PlanField { kPlanPacked, kPlanVarStart, kPlanFeatures, kPlanHeader };
enum FeatureField { kFeatKind, kFeatIndex, kFeatOffset, kFeatPrevEnd, kFeatVectorBytes, kFeatStride };

inline uint32_t Varint32Size(uint32_t v) { return v < (1u << 7) ? 1 : v < (1u << 14) ? 2 : v < (1u << 21) ? 3 : v < (1u << 28) ? 4 : 5; }
inline uint32_t Varint64Size(uint64_t v) {
  uint32_t n = 1;
  while (v >= 0x80) { v >>= 7; n++; }
  return n;
}
inline uint32_t LenFieldSize(uint32_t field, uint32_t n) { return Varint32Size(field << 3 | 2) + Varint32Size(n) + n; }
inline uint8_t* PutVarint(uint8_t* p, uint64_t v) {
  while (v >= 0x80) { *p++ = uint8_t(v) | 0x80; v >>= 7; }
  *p++ = uint8_t(v);
  return p;
}
inline uint64_t TimeBits(double t) { return uint64_t(int64_t(t)); }

struct RowsArgs {
  const Version* version;
  const int32_t* plan;
  const uint8_t* keys;
  const uint32_t* bounds;
  uint32_t count;
  const uint8_t* status;
  const int32_t* located;  // kOutStride per row (segment, value offset and length)
  const double* times;
  int32_t* row_size;
};

// Where a found row's value bytes are, checked to lie in its segment.
inline bool RowValue(const RowsArgs& a, uint32_t i, const uint8_t** at, uint32_t* length) {
  const int32_t* o = a.located + i * kOutStride;
  if (o[kOutSegment] < 0 || uint32_t(o[kOutSegment]) >= a.version->segments.size() || o[kOutValueOffset] < 0 ||
      o[kOutValueLength] < 0)
    return false;
  const Segment& g = a.version->segments[o[kOutSegment]];
  if (uint64_t(o[kOutValueOffset]) + uint64_t(o[kOutValueLength]) > g.data_end) return false;
  *at = g.bytes + o[kOutValueOffset];
  *length = uint32_t(o[kOutValueLength]);
  return true;
}

// A feature's bytes within a row of `length` bytes: [*start, *end) for strings and bytes, the slot otherwise.
inline bool FeatureRange(const int32_t* f, const uint8_t* at, uint32_t length, uint32_t var_start, uint32_t* start,
                         uint32_t* end) {
  const uint32_t offset = uint32_t(f[kFeatOffset]);
  switch (f[kFeatKind]) {
    case kString:
    case kBytes: {
      if (uint64_t(offset) + 4 > length || (f[kFeatPrevEnd] >= 0 && uint64_t(f[kFeatPrevEnd]) + 4 > length)) return false;
      const uint32_t s = f[kFeatPrevEnd] < 0 ? 0 : load32(at + f[kFeatPrevEnd]);
      const uint32_t e = load32(at + offset);
      *start = var_start + s;
      *end = var_start + e;
      return s <= e && uint64_t(var_start) + e <= length;
    }
    default: {
      const uint32_t width = f[kFeatKind] == kF32 ? 4 : f[kFeatKind] == kBool ? 1 : f[kFeatKind] == kVector ? uint32_t(f[kFeatVectorBytes]) : 8;
      *start = offset;
      *end = offset + width;
      return uint64_t(offset) + width <= length;
    }
  }
}

inline bool IsNull(const uint8_t* at, uint32_t length, int32_t index) {
  return uint32_t(index >> 3) < length && (at[index >> 3] & (1 << (index & 7))) != 0;
}

// Size of one `values` entry (tag 4, length, FeatureValue); 0 when the row is malformed.
inline uint32_t ValueEntrySize(const int32_t* f, const uint8_t* at, uint32_t length, uint32_t var_start) {
  uint32_t content;
  if (f[kFeatKind] == kMissing || IsNull(at, length, f[kFeatIndex])) {
    content = 2;
  } else {
    uint32_t s, e;
    if (!FeatureRange(f, at, length, var_start, &s, &e)) return 0;
    switch (f[kFeatKind]) {
      case kF32: content = 5; break;
      case kF64: content = 9; break;
      case kI64: {
        uint64_t v;
        std::memcpy(&v, at + s, 8);
        content = 1 + Varint64Size(v);
        break;
      }
      case kBool: content = 2; break;
      case kString:
      case kBytes: content = 1 + Varint32Size(e - s) + (e - s); break;
      default: {
        const uint32_t inner = 1 + Varint32Size(e - s) + (e - s);
        content = 1 + Varint32Size(inner) + inner;
      }
    }
  }
  return 1 + Varint32Size(content) + content;
}

bool UnpackRowsArgs(const FunctionCallbackInfo<Value>& args, RowsArgs* a) {
  // (version, plan, keys, bounds, count, status, located, times, rowSize, ...)
  if (args.Length() < 9 || !args[0]->IsExternal() || !args[1]->IsInt32Array() || !args[2]->IsUint8Array() ||
      !args[3]->IsUint32Array() || !args[4]->IsUint32() || !args[5]->IsUint8Array() || !args[6]->IsInt32Array() ||
      !args[7]->IsFloat64Array() || !args[8]->IsInt32Array())
    return false;
  a->version = static_cast<Version*>(args[0].As<v8::External>()->Value());
  a->plan = DataOf<int32_t>(args[1]);
  a->keys = DataOf<uint8_t>(args[2]);
  a->bounds = DataOf<uint32_t>(args[3]);
  a->count = args[4].As<v8::Uint32>()->Value();
  a->status = DataOf<uint8_t>(args[5]);
  a->located = DataOf<int32_t>(args[6]);
  a->times = DataOf<double>(args[7]);
  a->row_size = DataOf<int32_t>(args[8]);
  const size_t n = a->count;
  const size_t plan_ints = args[1].As<ArrayBufferView>()->ByteLength() / 4;
  const size_t keys_length = args[2].As<ArrayBufferView>()->ByteLength();
  if (plan_ints < kPlanHeader || a->plan[kPlanFeatures] < 0 ||
      plan_ints < kPlanHeader + size_t(a->plan[kPlanFeatures]) * kFeatStride || a->plan[kPlanVarStart] < 0 ||
      args[3].As<ArrayBufferView>()->ByteLength() < n * 8 || args[5].As<ArrayBufferView>()->ByteLength() < n ||
      args[6].As<ArrayBufferView>()->ByteLength() < n * kOutStride * 4 ||
      args[7].As<ArrayBufferView>()->ByteLength() < n * 8 || args[8].As<ArrayBufferView>()->ByteLength() < n * 4)
    return false;
  for (uint32_t i = 0; i < n; i++)
    if (a->bounds[2 * i] > a->bounds[2 * i + 1] || a->bounds[2 * i + 1] > keys_length) return false;
  return true;
}

// measureRows(version, plan, keys, bounds, count, status, located, times, rowSize, field): total bytes
// of the rows as repeated field `field`; each row's size goes to rowSize. -1 when a row is malformed.
void MeasureRows(const FunctionCallbackInfo<Value>& args) {
  Isolate* isolate = args.GetIsolate();
  RowsArgs a;
  if (!UnpackRowsArgs(args, &a) || !args[9]->IsUint32()) return Throw(isolate, "measureRows: bad arguments");
  const uint32_t field = args[9].As<v8::Uint32>()->Value();
  const bool packed = a.plan[kPlanPacked] != 0;
  const uint32_t var_start = uint32_t(a.plan[kPlanVarStart]);
  const int32_t nfeat = a.plan[kPlanFeatures];
  const int32_t* features = a.plan + kPlanHeader;
  double total = 0;
  for (uint32_t i = 0; i < a.count; i++) {
    const uint8_t st = a.status[i];
    uint32_t row = LenFieldSize(1, a.bounds[2 * i + 1] - a.bounds[2 * i]) + 2;
    if (st == kRowFound || st == kRowOutsideMaxAge) row += 1 + Varint64Size(TimeBits(a.times[i]));
    if (st == kRowFound) {
      const uint8_t* at;
      uint32_t length;
      if (!RowValue(a, i, &at, &length)) return args.GetReturnValue().Set(-1);
      if (packed) {
        row += LenFieldSize(5, length);
      } else {
        for (int32_t f = 0; f < nfeat; f++) {
          const uint32_t n = ValueEntrySize(features + f * kFeatStride, at, length, var_start);
          if (n == 0) return args.GetReturnValue().Set(-1);
          row += n;
        }
      }
    }
    a.row_size[i] = int32_t(row);
    total += LenFieldSize(field, row);
  }
  args.GetReturnValue().Set(total);
}

// writeRows(version, plan, keys, bounds, count, status, located, times, rowSize, field, target, pos):
// the end position. Rows must have been measured by measureRows with the same arguments.
void WriteRows(const FunctionCallbackInfo<Value>& args) {
  Isolate* isolate = args.GetIsolate();
  RowsArgs a;
  if (!UnpackRowsArgs(args, &a) || !args[9]->IsUint32() || !args[10]->IsUint8Array() || !args[11]->IsUint32())
    return Throw(isolate, "writeRows: bad arguments");
  const uint32_t field = args[9].As<v8::Uint32>()->Value();
  uint8_t* const target = DataOf<uint8_t>(args[10]);
  const size_t target_length = args[10].As<ArrayBufferView>()->ByteLength();
  size_t pos = args[11].As<v8::Uint32>()->Value();
  const bool packed = a.plan[kPlanPacked] != 0;
  const uint32_t var_start = uint32_t(a.plan[kPlanVarStart]);
  const int32_t nfeat = a.plan[kPlanFeatures];
  const int32_t* features = a.plan + kPlanHeader;
  for (uint32_t i = 0; i < a.count; i++) {
    const uint32_t row = uint32_t(a.row_size[i]);
    const size_t row_end = pos + LenFieldSize(field, row);
    if (a.row_size[i] < 0 || row_end > target_length) return Throw(isolate, "writeRows: rows do not fit");
    uint8_t* p = target + pos;
    p = PutVarint(p, field << 3 | 2);
    p = PutVarint(p, row);
    const uint32_t key_len = a.bounds[2 * i + 1] - a.bounds[2 * i];
    *p++ = 0x0a;  // key
    p = PutVarint(p, key_len);
    std::memcpy(p, a.keys + a.bounds[2 * i], key_len);
    p += key_len;
    const uint8_t st = a.status[i];
    *p++ = 0x10;  // status
    *p++ = st;
    if (st == kRowFound || st == kRowOutsideMaxAge) {
      *p++ = 0x18;  // event_time_ms
      p = PutVarint(p, TimeBits(a.times[i]));
    }
    if (st == kRowFound) {
      const uint8_t* at;
      uint32_t length;
      if (!RowValue(a, i, &at, &length)) return Throw(isolate, "writeRows: row out of range");
      if (packed) {
        *p++ = 0x2a;  // packed
        p = PutVarint(p, length);
        std::memcpy(p, at, length);
        p += length;
      } else {
        for (int32_t k = 0; k < nfeat; k++) {
          const int32_t* f = features + k * kFeatStride;
          *p++ = 0x22;  // values
          if (f[kFeatKind] == kMissing || IsNull(at, length, f[kFeatIndex])) {
            *p++ = 2;
            *p++ = 0x40;  // null_value
            *p++ = 0;
            continue;
          }
          uint32_t s, e;
          if (!FeatureRange(f, at, length, var_start, &s, &e)) return Throw(isolate, "writeRows: row out of range");
          switch (f[kFeatKind]) {
            case kF32:
              *p++ = 5;
              *p++ = 0x0d;
              std::memcpy(p, at + s, 4);
              p += 4;
              break;
            case kF64:
              *p++ = 9;
              *p++ = 0x11;
              std::memcpy(p, at + s, 8);
              p += 8;
              break;
            case kI64: {
              uint64_t v;
              std::memcpy(&v, at + s, 8);
              *p++ = uint8_t(1 + Varint64Size(v));
              *p++ = 0x18;
              p = PutVarint(p, v);
              break;
            }
            case kBool:
              *p++ = 2;
              *p++ = 0x20;
              *p++ = at[s] ? 1 : 0;
              break;
            case kString:
            case kBytes: {
              const uint32_t n = e - s;
              p = PutVarint(p, 1 + Varint32Size(n) + n);
              *p++ = f[kFeatKind] == kString ? 0x2a : 0x32;
              p = PutVarint(p, n);
              std::memcpy(p, at + s, n);
              p += n;
              break;
            }
            default: {
              const uint32_t n = e - s;
              const uint32_t inner = 1 + Varint32Size(n) + n;
              p = PutVarint(p, 1 + Varint32Size(inner) + inner);
              *p++ = 0x3a;  // Float32Vector
              p = PutVarint(p, inner);
              *p++ = 0x0a;  // values (packed floats)
              p = PutVarint(p, n);
              std::memcpy(p, at + s, n);
              p += n;
            }
          }
        }
      }
    }
    if (size_t(p - target) != row_end) return Throw(isolate, "writeRows: a row's size differs from its measure");
    pos = row_end;
  }
  args.GetReturnValue().Set(double(pos));
}

// crc32Async(view: Uint8Array, callback: (crc: number) => void): void
// CRC-32 of a whole view on libuv's thread pool: verifying a new version's segments (every byte,
// about 0.4 s per GiB) must not stall the event loop that serves requests. The work holds the
// view's backing store, so a mapping cannot be unmapped under it.
struct CrcWork {
  uv_work_t req;
  std::shared_ptr<v8::BackingStore> store;
  const uint8_t* data;
  size_t length;
  uint32_t crc;
  Isolate* isolate;
  v8::Global<v8::Function> callback;
};

void Crc32Async(const FunctionCallbackInfo<Value>& args) {
  Isolate* isolate = args.GetIsolate();
  if (args.Length() < 2 || !args[0]->IsArrayBufferView() || !args[1]->IsFunction())
    return Throw(isolate, "crc32Async(view, callback): bad arguments");
  Local<ArrayBufferView> view = args[0].As<ArrayBufferView>();
  auto work = new CrcWork();
  work->store = view->Buffer()->GetBackingStore();
  work->data = static_cast<const uint8_t*>(work->store->Data()) + view->ByteOffset();
  work->length = view->ByteLength();
  work->crc = 0;
  work->isolate = isolate;
  work->callback.Reset(isolate, args[1].As<v8::Function>());
  work->req.data = work;
  uv_queue_work(
      node::GetCurrentEventLoop(isolate), &work->req,
      [](uv_work_t* req) {
        auto w = static_cast<CrcWork*>(req->data);
        w->crc = Crc32(w->data, w->length, 0);
      },
      [](uv_work_t* req, int) {
        auto w = static_cast<CrcWork*>(req->data);
        Isolate* iso = w->isolate;
        v8::HandleScope scope(iso);
        Local<v8::Function> callback = w->callback.Get(iso);
        Local<Context> context = callback->GetCreationContextChecked();
        Context::Scope context_scope(context);
        Local<Value> argv[] = {v8::Integer::NewFromUnsigned(iso, w->crc)};
        w->callback.Reset();
        w->store.reset();
        delete w;
        node::MakeCallback(iso, context->Global(), callback, 1, argv, node::async_context{0, 0});
      });
}

}  // namespace

NODE_MODULE_INIT(/* exports, module, context */) {
  static const bool crc_ready = (strata::InitCrc(), true);  // once per process, even with worker threads
  (void)crc_ready;
  Isolate* isolate = context->GetIsolate();
  auto set = [&](const char* name, v8::FunctionCallback fn) {
    exports
        ->Set(context, v8::String::NewFromUtf8(isolate, name).ToLocalChecked(),
              v8::FunctionTemplate::New(isolate, fn)->GetFunction(context).ToLocalChecked())
        .Check();
  };
  set("map", Map);
  set("prepare", Prepare);
  set("locateBatch", LocateBatch);
  set("locateOne", LocateOne);
  set("measureRows", MeasureRows);
  set("writeRows", WriteRows);
  set("crc32Async", Crc32Async);
  strata::RegisterCsvEncode(isolate, context, exports);
  strata::RegisterSegmentIndex(isolate, context, exports);
  strata::RegisterChecksum(isolate, context, exports);
}
