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
//   copyRanges(...)      the row copies of one response in one call.
//   crc32Async(...)      a whole segment's CRC on libuv's thread pool, for verifying before a swap.

#include <node.h>
#include <v8.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

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

// ---- segment grammar constants (src/format/segment-layout.ts) ----
constexpr uint32_t kHeaderBytes = 4096;
constexpr uint32_t kRecordHeaderBytes = 24;
constexpr uint16_t kFlagTombstone = 1;

// Per-segment parameters, as packed by src/storage/native.ts (stride kParamStride u32s).
enum Param { kIndexOffset, kSlotCount, kHashSeed, kMaxProbe, kSalt, kDataEnd, kParamStride = 8 };

// Results, as read by src/storage/native.ts (stride kOutStride i32s per key).
enum Status { kAbsent = 0, kFound = 1, kCorrupt = 2 };
enum Out { kOutStatus, kOutSegment, kOutValueOffset, kOutValueLength, kOutStride };

// ---- CRC-32 (IEEE, zlib's), slicing-by-8 ----
uint32_t crc_table[8][256];

void InitCrc() {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0xedb88320u : c >> 1;
    crc_table[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; i++)
    for (int t = 1; t < 8; t++) crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

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

uint32_t Crc32(const uint8_t* p, size_t n, uint32_t seed) {
  uint32_t c = ~seed;
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

// Up to kChunk keys go through the three stages together: enough misses in flight to fill the
// memory pipeline, few enough that the first prefetches have not been evicted by the last.
constexpr uint32_t kChunk = 32;

void LocateChunk(const Version& v, const uint8_t* keys, const uint32_t* bounds, uint32_t count, int32_t* out,
                 double* times) {
  uint32_t lo[kChunk], hi[kChunk], seed_of[kChunk], cand[kChunk];
  bool done[kChunk];
  constexpr uint32_t kNone = 0xffffffffu;
  const uint32_t nseg = uint32_t(v.segments.size());
  for (uint32_t i = 0; i < count; i++) {
    int32_t* o = out + i * kOutStride;
    o[kOutStatus] = kAbsent;
    o[kOutSegment] = -1;
    o[kOutValueOffset] = 0;
    o[kOutValueLength] = 0;
    times[i] = 0;
    done[i] = false;
    if (nseg > 0) Hash64(keys + bounds[2 * i], bounds[2 * i + 1] - bounds[2 * i], v.segments[0].seed, &lo[i], &hi[i]);
    seed_of[i] = nseg > 0 ? v.segments[0].seed : 0;
  }
  for (uint32_t s = 0; s < nseg; s++) {
    const Segment& g = v.segments[s];
    // Stage 1: hash (if this segment's seed differs) and prefetch each open key's home slot.
    for (uint32_t i = 0; i < count; i++) {
      if (done[i]) continue;
      if (seed_of[i] != g.seed) {
        Hash64(keys + bounds[2 * i], bounds[2 * i + 1] - bounds[2 * i], g.seed, &lo[i], &hi[i]);
        seed_of[i] = g.seed;
      }
      __builtin_prefetch(g.slots + (lo[i] & g.mask) * 4);
    }
    // Stage 2: find the first slot whose fingerprint matches; prefetch its whole record.
    for (uint32_t i = 0; i < count; i++) {
      cand[i] = kNone;
      if (done[i]) continue;
      uint32_t slot = lo[i] & g.mask;
      for (uint32_t probe = 0; probe < g.max_probe; probe++, slot = (slot + 1) & g.mask) {
        const uint32_t* w = g.slots + slot * 4;
        if (w[3] == 0) break;
        if (w[0] == lo[i] && w[1] == hi[i]) {
          cand[i] = slot;
          if (uint64_t(w[2]) + w[3] <= g.length)
            for (uint32_t at = 0; at < w[3]; at += 64) __builtin_prefetch(g.bytes + w[2] + at);
          break;
        }
      }
    }
    // Stage 3: check and compare the candidates; on a fingerprint collision, probe on from there.
    for (uint32_t i = 0; i < count; i++) {
      if (done[i] || cand[i] == kNone) continue;
      const uint8_t* key = keys + bounds[2 * i];
      const uint32_t key_len = bounds[2 * i + 1] - bounds[2 * i];
      uint32_t slot = cand[i];
      uint32_t probe = (slot - (lo[i] & g.mask)) & g.mask;
      for (; probe < g.max_probe; probe++, slot = (slot + 1) & g.mask) {
        const uint32_t* w = g.slots + slot * 4;
        const uint32_t length = w[3];
        if (length == 0) break;
        if (w[0] != lo[i] || w[1] != hi[i]) continue;
        const uint32_t offset = w[2];
        int32_t* o = out + i * kOutStride;
        if (!RecordIsIntact(g, offset, length)) {
          o[kOutStatus] = kCorrupt;
          o[kOutSegment] = int32_t(s);
          done[i] = true;
          break;
        }
        if (!KeyEquals(g, offset, key, key_len)) continue;
        done[i] = true;
        const uint8_t* r = g.bytes + offset;
        if (load16(r + 4) & kFlagTombstone) break;  // deleted: absent, and older segments are not asked
        o[kOutStatus] = kFound;
        o[kOutSegment] = int32_t(s);
        o[kOutValueOffset] = int32_t(offset + kRecordHeaderBytes + align8(load16(r + 6)));
        o[kOutValueLength] = int32_t(load32(r + 8));
        int32_t time_hi;
        std::memcpy(&time_hi, r + 20, 4);
        times[i] = double(time_hi) * 4294967296.0 + double(load32(r + 16));
        break;
      }
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
  int length = key->Utf8Length(isolate);
  if (size_t(length) > sizeof(stack)) {
    heap.resize(length);
    bytes = heap.data();
  }
  key->WriteUtf8(isolate, reinterpret_cast<char*>(bytes), length, nullptr,
                 v8::String::NO_NULL_TERMINATION | v8::String::REPLACE_INVALID_UTF8);
  const uint32_t bounds[2] = {0, uint32_t(length)};
  LocateChunk(version, bytes, bounds, 1, version.one_out, version.one_time);
  args.GetReturnValue().Set(version.one_out[kOutStatus]);
}

// copyRanges(target: Uint8Array, sources: Uint8Array[], ranges: Int32Array, count: number): void
// Range i copies sources[ranges[4i+1]][ranges[4i+2], +ranges[4i+3]) to target at ranges[4i]: the
// row values of one response in one call (Buffer.copy costs 140-210 ns per call from JS).
void CopyRanges(const FunctionCallbackInfo<Value>& args) {
  Isolate* isolate = args.GetIsolate();
  Local<Context> context = isolate->GetCurrentContext();
  if (args.Length() < 4 || !args[0]->IsUint8Array() || !args[1]->IsArray() || !args[2]->IsInt32Array() ||
      !args[3]->IsUint32())
    return Throw(isolate, "copyRanges: bad arguments");
  uint8_t* target = DataOf<uint8_t>(args[0]);
  const size_t target_length = args[0].As<ArrayBufferView>()->ByteLength();
  Local<v8::Array> source_array = args[1].As<v8::Array>();
  const int32_t* ranges = DataOf<int32_t>(args[2]);
  const uint32_t count = args[3].As<v8::Uint32>()->Value();
  if (args[2].As<ArrayBufferView>()->ByteLength() < size_t(count) * 16) return Throw(isolate, "copyRanges: ranges too short");
  const uint32_t nsrc = source_array->Length();
  std::vector<std::pair<const uint8_t*, size_t>> sources(nsrc);
  for (uint32_t s = 0; s < nsrc; s++) {
    Local<Value> v;
    if (!source_array->Get(context, s).ToLocal(&v) || !v->IsUint8Array()) return Throw(isolate, "copyRanges: source is not a Uint8Array");
    sources[s] = {DataOf<uint8_t>(v), v.As<ArrayBufferView>()->ByteLength()};
  }
  for (uint32_t i = 0; i < count; i++) {
    const int32_t* r = ranges + i * 4;
    if (r[0] < 0 || r[1] < 0 || uint32_t(r[1]) >= nsrc || r[2] < 0 || r[3] < 0 ||
        size_t(r[0]) + size_t(r[3]) > target_length || size_t(r[2]) + size_t(r[3]) > sources[r[1]].second)
      return Throw(isolate, "copyRanges: range out of bounds");
  }
  for (uint32_t i = 0; i < count; i++) {
    const int32_t* r = ranges + i * 4;
    std::memcpy(target + r[0], sources[r[1]].first + r[2], size_t(r[3]));
  }
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
  static const bool crc_ready = (InitCrc(), true);  // once per process, even with worker threads
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
  set("copyRanges", CopyRanges);
  set("crc32Async", Crc32Async);
}
