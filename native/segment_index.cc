// placeIndexEntries(words, from, count, slots, state): number
//
// The loop of buildIndex (src/format/segment-index.ts, the reference) that places a segment's
// index entries, in write order, into its open-addressing slots: linear probing from
// `fpLo & (slotCount - 1)` to the first empty slot. It stops at the first entry whose fingerprint
// matches an occupied slot and returns its number: whether the two keys are equal (a later
// record of the key replaces the earlier one) is decided in JS, by comparing the keys, and JS
// places that entry. Returns `count` when every entry is placed.
//
// In JS each entry costs a cache miss on its home slot (an import's index is tens of MB); here
// the home slots of the next entries are prefetched while one is placed, so the misses overlap.
//
// words: 4 u32 per entry (fpLo, fpHi, record offset, record length; IndexEntries).
// slots: slotCount * 4 u32 (the index section).
// state (Int32Array): [maxProbe, liveCount], in and out.

#include "segment_index.h"

#include <sys/mman.h>

#include <cmath>
#include <cstdint>

namespace strata {
namespace {

using v8::ArrayBufferView;
using v8::FunctionCallbackInfo;
using v8::Isolate;
using v8::Local;
using v8::Value;

template <typename T>
T* DataOf(Local<Value> v, size_t* length) {
  Local<ArrayBufferView> view = v.As<ArrayBufferView>();
  *length = view->ByteLength() / sizeof(T);
  return reinterpret_cast<T*>(static_cast<uint8_t*>(view->Buffer()->Data()) + view->ByteOffset());
}

void Throw(Isolate* isolate, const char* message) {
  isolate->ThrowException(v8::Exception::TypeError(v8::String::NewFromUtf8(isolate, message).ToLocalChecked()));
}

// Maps the fresh slots writable in one call before the first entry is placed. Touched at random,
// each of their pages took two faults: a read (of the probe) mapped the shared zero page, and
// the write after it replaced that page and flushed its TLB entry on every CPU running the
// process, an inter-processor interrupt that is costly on a VM (perf: about 7% of an import).
// Best effort: without MADV_POPULATE_WRITE (Linux < 5.14, other systems) the faults simply
// happen as before.
void PopulateForWrite(void* data, size_t bytes) {
#ifdef MADV_POPULATE_WRITE
  const uintptr_t page = 4096;
  const uintptr_t from = (reinterpret_cast<uintptr_t>(data) + page - 1) & ~(page - 1);
  const uintptr_t to = (reinterpret_cast<uintptr_t>(data) + bytes) & ~(page - 1);
  if (to > from) madvise(reinterpret_cast<void*>(from), to - from, MADV_POPULATE_WRITE);
#else
  (void)data;
  (void)bytes;
#endif
}

// How far ahead home slots are prefetched: enough misses in flight to fill the memory pipeline.
constexpr uint64_t kAhead = 16;

void PlaceIndexEntries(const FunctionCallbackInfo<Value>& args) {
  Isolate* isolate = args.GetIsolate();
  if (args.Length() < 5 || !args[0]->IsUint32Array() || !args[1]->IsNumber() || !args[2]->IsNumber() ||
      !args[3]->IsUint32Array() || !args[4]->IsInt32Array())
    return Throw(isolate, "placeIndexEntries(words, from, count, slots, state): bad arguments");
  size_t words_len, slots_len, state_len;
  const uint32_t* words = DataOf<uint32_t>(args[0], &words_len);
  uint32_t* slots = DataOf<uint32_t>(args[3], &slots_len);
  int32_t* state = DataOf<int32_t>(args[4], &state_len);
  const double from_arg = args[1].As<v8::Number>()->Value();
  const double count_arg = args[2].As<v8::Number>()->Value();
  const uint64_t slot_count = slots_len / 4;
  if (!(count_arg >= 0 && count_arg <= double(words_len / 4) && std::trunc(count_arg) == count_arg) ||
      !(from_arg >= 0 && from_arg <= count_arg && std::trunc(from_arg) == from_arg))
    return Throw(isolate, "placeIndexEntries: from and count must be within the entries");
  // A power of two, and room: the probe loop ends only at an empty slot (load <= 0.7 leaves some).
  if (slot_count == 0 || (slot_count & (slot_count - 1)) != 0 || state_len < 2 || count_arg >= double(slot_count))
    return Throw(isolate, "placeIndexEntries: bad slots or state");
  const uint64_t count = uint64_t(count_arg);
  const uint32_t mask = uint32_t(slot_count - 1);
  int32_t max_probe = state[0];
  int32_t live = state[1];
  uint64_t i = uint64_t(from_arg);
  if (i == 0 && count > 0) PopulateForWrite(slots, slots_len * sizeof(uint32_t));
  for (uint64_t k = i; k < count && k < i + kAhead; k++) __builtin_prefetch(slots + (words[k * 4] & mask) * 4);
  for (; i < count; i++) {
    if (i + kAhead < count) __builtin_prefetch(slots + (words[(i + kAhead) * 4] & mask) * 4, 1);
    const uint32_t* e = words + i * 4;
    uint32_t s = e[0] & mask;
    int32_t probe = 1;
    for (;; s = (s + 1) & mask, probe++) {
      // Never with our own tables (load <= 0.7); a full table given by mistake must not hang.
      if (uint64_t(probe) > slot_count) return Throw(isolate, "placeIndexEntries: the slots are full");
      uint32_t* w = slots + uint64_t(s) * 4;
      if (w[3] == 0) {
        w[0] = e[0];
        w[1] = e[1];
        w[2] = e[2];
        w[3] = e[3];
        live++;
        break;
      }
      if (w[0] == e[0] && w[1] == e[1]) {
        state[0] = max_probe;
        state[1] = live;
        args.GetReturnValue().Set(double(i));
        return;
      }
    }
    if (probe > max_probe) max_probe = probe;
  }
  state[0] = max_probe;
  state[1] = live;
  args.GetReturnValue().Set(double(count));
}

}  // namespace

void RegisterSegmentIndex(Isolate* isolate, Local<v8::Context> context, Local<v8::Object> exports) {
  exports
      ->Set(context, v8::String::NewFromUtf8(isolate, "placeIndexEntries").ToLocalChecked(),
            v8::FunctionTemplate::New(isolate, PlaceIndexEntries)->GetFunction(context).ToLocalChecked())
      .Check();
}

}  // namespace strata
