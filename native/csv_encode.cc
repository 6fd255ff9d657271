// encodeCsvLines(plan, cursor, src, start, limit, bytes, state, entries, eventTimes): number
//
// The CSV import's hot loop (src/importer/native-lines.ts calls it): types plain CSV lines
// straight into segment records, many lines a call, and frames each record as
// SegmentEncoder.commit would (header, CRC seeded by salt and file offset, key hash, index entry,
// event time). It is a port of CsvRowCoercer.tryLineInto (src/importer/row-coercion.ts), which
// stays the reference: it takes the same lines, gives the same bytes (tests compare the two on
// random files), and stops at the first line it does not take, which the JS then handles (the
// JS fast path, or the tokeniser with its error messages). It takes int64 values of any length
// the type allows, where the JS fast path stops at 15 digits (the tokenising path gives those
// lines the same bytes).
//
// Nothing here trusts its arguments: the plan is checked before use, every source read is below
// `limit`, every record write is within the record's reserved room, which is checked against the
// buffer, and every index entry and event time against its array.

#include "csv_encode.h"

#include <node.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "csv_numbers.h"
#include "segment_format.h"

namespace strata {
namespace {

using csv::kFail;
using v8::ArrayBufferView;
using v8::Context;
using v8::FunctionCallbackInfo;
using v8::Isolate;
using v8::Local;
using v8::Object;
using v8::Value;

// Column kinds: K_* of src/importer/row-coercion.ts.
enum Kind { kFloat32, kFloat64, kInt64, kBool, kString, kBytes, kVector, kKey, kEventTime, kKinds };
// Column roles other than a feature index.
constexpr int32_t kRoleKey = -1;
constexpr int32_t kRoleEventTime = -2;

// The plan (Int32Array), packed by packLinePlan in src/importer/native-lines.ts: a header, then
// per column {kind, role, slot offset in the row, vector length}, then per string/bytes feature in
// schema order {END slot offset, feature index}, then the null bits of the features without a
// column, one byte per element.
enum PlanHeader {
  kPlanColumns,
  kPlanDirect,  // the key is column 0: rows are written in place, else in scratch and copied
  kPlanVarStart,
  kPlanNullBytes,
  kPlanVarCount,
  kPlanReserve,    // room one line's record may take (RecordTarget.reserve's argument)
  kPlanLineBytes,  // longer lines are not taken
  kPlanFeatures,
  kPlanHeaderSize
};
constexpr int kColumnStride = 4;

// cursor (Float64Array): [default event time] in, [offset after the last line taken, why it stopped] out.
enum Cursor { kCursorEventTime, kCursorNext, kCursorStop, kCursorSize };
enum Stop { kStopDeclined = 0, kStopRoom = 1, kStopEnd = 2 };

// state (Float64Array): a SegmentEncoder's framing state, BATCH_* in src/format/segment-encoder.ts.
enum Batch { kUsed, kEnd, kOffset, kSalt, kSeed, kCount, kMinEventTime, kMaxEventTime, kEstimateLimit, kBatchSize };

struct Column {
  int32_t kind;
  int32_t role;
  uint32_t slot;
  uint32_t length;
};

struct Plan {
  std::vector<Column> columns;
  std::vector<uint32_t> var_offsets;
  std::vector<uint32_t> var_features;
  std::vector<uint8_t> absent_nulls;
  bool has_absent = false;
  bool direct = false;
  uint32_t var_start = 0;
  uint32_t reserve = 0;
  uint32_t line_bytes = 0;
  int64_t default_event_time = 0;
};

uint32_t SlotWidth(const Column& c) {
  switch (c.kind) {
    case kFloat64:
    case kInt64:
      return 8;
    case kFloat32:
    case kString:
    case kBytes:
      return 4;
    case kBool:
      return 1;
    case kVector:
      return 4 * c.length;
    default:
      return 0;
  }
}

// Reads and checks the plan; false if it is inconsistent (then nothing is written).
bool ReadPlan(const int32_t* w, size_t n, double default_event_time, Plan* plan) {
  if (n < kPlanHeaderSize) return false;
  const int32_t ncols = w[kPlanColumns], nvar = w[kPlanVarCount], null_bytes = w[kPlanNullBytes];
  const int32_t var_start = w[kPlanVarStart], features = w[kPlanFeatures], line_bytes = w[kPlanLineBytes];
  if (ncols < 1 || ncols > 65536 || nvar < 0 || nvar > features || null_bytes < 0 || features < 0 ||
      int64_t(features) > int64_t(null_bytes) * 8 || var_start < null_bytes || var_start > (1 << 24) ||
      line_bytes < 1 || line_bytes > (1 << 24))
    return false;
  if (n < size_t(kPlanHeaderSize) + size_t(ncols) * kColumnStride + size_t(nvar) * 2 + size_t(null_bytes)) return false;
  // The record of a line: header, key and var bytes (both from the line), the fixed part, padding.
  if (int64_t(w[kPlanReserve]) < int64_t(kRecordHeaderBytes) + 8 + var_start + 8 + line_bytes) return false;
  // SegmentEncoder.commit refuses event times that are not safe integers: leave those to it.
  if (!(std::fabs(default_event_time) <= 9007199254740991.0) || std::trunc(default_event_time) != default_event_time)
    return false;
  plan->default_event_time = int64_t(default_event_time);
  plan->direct = w[kPlanDirect] != 0;
  plan->var_start = uint32_t(var_start);
  plan->reserve = uint32_t(w[kPlanReserve]);
  plan->line_bytes = uint32_t(line_bytes);
  plan->columns.resize(ncols);
  const int32_t* c = w + kPlanHeaderSize;
  int keys = 0;
  for (int32_t j = 0; j < ncols; j++, c += kColumnStride) {
    Column col{c[0], c[1], uint32_t(c[2]), uint32_t(c[3])};
    if (col.kind < 0 || col.kind >= kKinds || c[2] < 0 || c[3] < 0 || c[3] > line_bytes) return false;
    if (col.kind == kKey) {
      if (col.role != kRoleKey) return false;
      keys++;
    } else if (col.kind == kEventTime) {
      if (col.role != kRoleEventTime) return false;
    } else if (col.role < 0 || col.role >= features || uint64_t(col.slot) + SlotWidth(col) > uint64_t(var_start) ||
               col.slot < uint32_t(null_bytes)) {
      return false;
    }
    plan->columns[j] = col;
  }
  if (keys != 1 || (plan->direct && plan->columns[0].kind != kKey)) return false;
  plan->var_offsets.resize(nvar);
  plan->var_features.resize(nvar);
  for (int32_t k = 0; k < nvar; k++, c += 2) {
    if (c[0] < null_bytes || int64_t(c[0]) + 4 > var_start || c[1] < 0 || c[1] >= features) return false;
    plan->var_offsets[k] = uint32_t(c[0]);
    plan->var_features[k] = uint32_t(c[1]);
  }
  plan->absent_nulls.resize(null_bytes);
  for (int32_t k = 0; k < null_bytes; k++) {
    plan->absent_nulls[k] = uint8_t(c[k]);
    plan->has_absent |= c[k] != 0;
  }
  return true;
}

constexpr uint8_t kComma = ',', kQuote = '"', kLf = '\n', kCr = '\r';

// scanPlain: the end of an unquoted field (the first comma, CR, LF or quote, or e).
inline size_t ScanPlain(const uint8_t* b, size_t p, size_t e) {
  while (p < e) {
    const uint8_t c = b[p];
    if (c <= kComma && (c == kComma || c == kLf || c == kCr || c == kQuote)) break;
    p++;
  }
  return p;
}

// parseBoolBytes: true / false in any case, 1 / 0; -1 when neither.
inline int ParseBool(const uint8_t* b, size_t s, size_t e) {
  const size_t n = e - s;
  if (n == 1) return b[s] == '1' ? 1 : b[s] == '0' ? 0 : -1;
  auto lower_is = [&](const char* w) {
    for (size_t i = 0; i < n; i++)
      if ((b[s + i] | 0x20) != w[i]) return false;
    return true;
  };
  if (n == 4 && lower_is("true")) return 1;
  if (n == 5 && lower_is("false")) return 0;
  return -1;
}

// Base64 alphabet values, or 0xff.
struct Base64Table {
  uint8_t v[256];
  Base64Table() {
    std::memset(v, 0xff, sizeof v);
    const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; i++) v[uint8_t(a[i])] = uint8_t(i);
  }
};
const Base64Table kBase64;

// isBase64Bytes: standard base64, padded to a multiple of 4, '=' only at the end. Returns the
// length without padding, or kFail.
inline size_t Base64Body(const uint8_t* b, size_t s, size_t e) {
  const size_t n = e - s;
  if (n % 4 != 0) return kFail;
  size_t end = e;
  if (n > 0 && b[e - 1] == '=') {
    end--;
    if (b[e - 2] == '=') end--;
  }
  for (size_t p = s; p < end; p++)
    if (kBase64.v[b[p]] == 0xff) return kFail;
  return end - s;
}

// Decodes `n` base64 characters (no padding) into out; returns the bytes written. The bits past
// the last whole byte are ignored, as Buffer.from(text, "base64") does.
inline size_t DecodeBase64(const uint8_t* b, size_t n, uint8_t* out) {
  size_t o = 0, i = 0;
  for (; i + 4 <= n; i += 4) {
    const uint32_t v = (uint32_t(kBase64.v[b[i]]) << 18) | (uint32_t(kBase64.v[b[i + 1]]) << 12) |
                       (uint32_t(kBase64.v[b[i + 2]]) << 6) | kBase64.v[b[i + 3]];
    out[o++] = uint8_t(v >> 16);
    out[o++] = uint8_t(v >> 8);
    out[o++] = uint8_t(v);
  }
  const size_t rest = n - i;
  if (rest >= 2) {
    const uint32_t v = (uint32_t(kBase64.v[b[i]]) << 18) | (uint32_t(kBase64.v[b[i + 1]]) << 12) |
                       (rest == 3 ? uint32_t(kBase64.v[b[i + 2]]) << 6 : 0);
    out[o++] = uint8_t(v >> 16);
    if (rest == 3) out[o++] = uint8_t(v >> 8);
  }
  return o;
}

inline bool IsWs(uint8_t c) { return c == ' ' || c == '\t'; }

// scanVectorInto (single line): a JSON array of exactly n numbers at b[s..e), into out[0..n).
// Returns the offset after the closing bracket and any spaces, or kFail.
inline size_t ScanVector(const uint8_t* b, size_t s, size_t e, uint32_t n, uint8_t* out) {
  size_t p = s;
  while (p < e && IsWs(b[p])) p++;
  if (p >= e || b[p] != '[') return kFail;
  p++;
  uint32_t k = 0;
  while (p < e && IsWs(b[p])) p++;
  if (p < e && b[p] == ']') {
    p++;
  } else {
    while (true) {
      while (p < e && IsWs(b[p])) p++;
      double v;
      const size_t t = csv::ScanFloat32(b, p, e, &v);
      if (t == kFail) return kFail;
      const float r = static_cast<float>(v);
      if (!std::isfinite(r) && std::isfinite(v)) return kFail;
      if (k < n) std::memcpy(out + 4 * size_t(k), &r, 4);
      k++;
      p = t;
      while (p < e && IsWs(b[p])) p++;
      if (p >= e) return kFail;
      if (b[p] == ',') {
        p++;
        continue;
      }
      if (b[p] == ']') {
        p++;
        break;
      }
      return kFail;
    }
  }
  while (p < e && IsWs(b[p])) p++;
  return k == n ? p : kFail;
}

// What EncodeLine made of a line.
struct Line {
  uint32_t key_len;
  uint32_t value_len;
  int64_t event_time;
};

// Types the line at b[start..limit) into the record at `rec` (room: plan.reserve bytes, zeroed):
// key at rec + 24, row after it. Returns the offset past the line end, or kFail, with every byte
// it wrote zeroed again. `scratch` (var_start + line_bytes zeroed bytes) holds the row when the
// key is not the first column, until the key's length says where the row goes.
size_t EncodeLine(const Plan& plan, const uint8_t* b, size_t start, size_t limit, uint8_t* rec, uint8_t* scratch,
                  Line* line) {
  const size_t lim = limit - start > plan.line_bytes ? start + plan.line_bytes : limit;
  uint8_t* const key_at = rec + kRecordHeaderBytes;
  uint8_t* row = plan.direct ? nullptr : scratch;  // direct: set once the key's length is known
  uint32_t var_len = 0;
  uint32_t key_len = 0;
  int64_t event_time = plan.default_event_time;
  const size_t ncols = plan.columns.size();
  size_t p = start;
  for (size_t j = 0; j < ncols; j++) {
    if (p >= lim) goto decline;
    {
      const Column& col = plan.columns[j];
      const uint8_t c = b[p];
      size_t end = p;
      if (c == kComma || c == kLf || c == kCr) {
        if (col.kind == kKey) goto decline;
        if (col.role >= 0) row[col.role >> 3] |= uint8_t(1u << (col.role & 7));
      } else {
        uint8_t* const slot = col.kind == kKey || col.kind == kEventTime ? nullptr : row + col.slot;
        switch (col.kind) {
          case kFloat32: {
            double v;
            end = csv::ScanFloat32(b, p, lim, &v);
            if (end == kFail) goto decline;
            const float r = static_cast<float>(v);
            if (!std::isfinite(r) && std::isfinite(v)) goto decline;
            std::memcpy(slot, &r, 4);
            break;
          }
          case kFloat64: {
            double v;
            end = csv::ScanNumber(b, p, lim, &v);
            if (end == kFail) goto decline;
            std::memcpy(slot, &v, 8);
            break;
          }
          case kInt64: {
            size_t q = p;
            const bool neg = c == '-';
            if (neg) q++;
            const size_t ds = q;
            uint64_t v = 0;
            bool over = false;
            for (; q < lim && csv::IsDigit(b[q]); q++) {
              const uint64_t d = b[q] - '0';
              if (v > (UINT64_MAX - d) / 10) over = true;
              else v = v * 10 + d;
            }
            const uint64_t max = neg ? uint64_t(1) << 63 : (uint64_t(1) << 63) - 1;
            if (q == ds || over || v > max) goto decline;
            const uint64_t bits = neg ? 0 - v : v;  // two's complement
            std::memcpy(slot, &bits, 8);
            end = q;
            break;
          }
          case kVector: {
            if (c != kQuote) goto decline;
            end = ScanVector(b, p + 1, lim, col.length, slot);
            if (end == kFail || end >= lim || b[end] != kQuote) goto decline;
            end++;
            break;
          }
          case kString:
          case kKey: {
            size_t s = p;
            if (c == kQuote) {
              s = p + 1;
              end = s;
              while (end < lim && b[end] != kQuote && b[end] != kLf) end++;
              // A doubled quote or a line break inside: the tokeniser's.
              if (end + 1 >= lim || b[end] != kQuote || b[end + 1] == kQuote) goto decline;
            } else {
              end = ScanPlain(b, p, lim);
            }
            const size_t n = end - s;
            if (col.kind == kKey) {
              if (n == 0 || n > kMaxKeyBytes) goto decline;
              std::memcpy(key_at, b + s, n);
              key_len = uint32_t(n);
              if (row == nullptr) row = key_at + align8(key_len);
            } else {
              // Cannot happen (key and var bytes are disjoint parts of the line); keeps writes in the room.
              if (key_len + var_len + n > plan.line_bytes) goto decline;
              std::memcpy(row + plan.var_start + var_len, b + s, n);
              var_len += uint32_t(n);
              store32(slot, var_len);
            }
            if (c == kQuote) end++;
            break;
          }
          case kBool: {
            end = ScanPlain(b, p, lim);
            const int v = ParseBool(b, p, end);
            if (v < 0) goto decline;
            if (v) *slot = 1;
            break;
          }
          case kBytes: {
            if (c == kQuote) goto decline;
            end = ScanPlain(b, p, lim);
            const size_t body = Base64Body(b, p, end);
            if (body == kFail || key_len + var_len + (end - p) > plan.line_bytes) goto decline;
            var_len += uint32_t(DecodeBase64(b + p, body, row + plan.var_start + var_len));
            store32(slot, var_len);
            break;
          }
          default: {  // kEventTime
            end = csv::ScanEventTime(b, p, lim, &event_time);
            if (end == kFail) goto decline;
          }
        }
      }
      if (end >= lim) goto decline;
      const uint8_t d = b[end];
      if (j < ncols - 1) {
        if (d != kComma) goto decline;
        p = end + 1;
      } else if (d == kLf) {
        p = end + 1;
      } else if (d == kCr && end + 1 < lim && b[end + 1] == kLf) {
        p = end + 2;
      } else {
        goto decline;
      }
    }
  }
  {
    // Features without a column are null; a null string/bytes repeats the previous END.
    if (plan.has_absent)
      for (size_t k = 0; k < plan.absent_nulls.size(); k++) row[k] |= plan.absent_nulls[k];
    uint32_t prev_end = 0;
    for (size_t k = 0; k < plan.var_offsets.size(); k++) {
      const uint32_t f = plan.var_features[k];
      uint8_t* w = row + plan.var_offsets[k];
      if (row[f >> 3] & (1u << (f & 7))) store32(w, prev_end);
      else prev_end = load32(w);
    }
    const uint32_t value_len = plan.var_start + var_len;
    if (!plan.direct) {
      std::memcpy(key_at + align8(key_len), scratch, value_len);
      std::memset(scratch, 0, value_len);
    }
    *line = Line{key_len, value_len, event_time};
    return p;
  }
decline:
  // Zero what was written: the key, and the row when it was written in place.
  std::memset(rec, 0,
              kRecordHeaderBytes + align8(key_len) + (plan.direct && row != nullptr ? plan.var_start + var_len : 0));
  if (!plan.direct) std::memset(scratch, 0, plan.var_start + var_len);
  return kFail;
}

template <typename T>
T* DataOf(Local<Value> v, size_t* length) {
  Local<ArrayBufferView> view = v.As<ArrayBufferView>();
  *length = view->ByteLength() / sizeof(T);
  return reinterpret_cast<T*>(static_cast<uint8_t*>(view->Buffer()->Data()) + view->ByteOffset());
}

void Throw(Isolate* isolate, const char* message) {
  isolate->ThrowException(v8::Exception::TypeError(v8::String::NewFromUtf8(isolate, message).ToLocalChecked()));
}

// Math.ceil for 0 <= x < 2^53, without a call to libm's ceil (no SSE4.1 rounding in the baseline).
inline double CeilPositive(double x) {
  const double t = double(int64_t(x));
  return t < x ? t + 1 : t;
}

inline bool IsIndex(double v, double max) { return v >= 0 && v <= max && std::trunc(v) == v; }

void EncodeCsvLines(const FunctionCallbackInfo<Value>& args) {
  Isolate* isolate = args.GetIsolate();
  if (args.Length() < 9 || !args[0]->IsInt32Array() || !args[1]->IsFloat64Array() || !args[2]->IsUint8Array() ||
      !args[3]->IsNumber() || !args[4]->IsNumber() || !args[5]->IsUint8Array() || !args[6]->IsFloat64Array() ||
      !args[7]->IsUint32Array() || !args[8]->IsFloat64Array())
    return Throw(isolate, "encodeCsvLines(plan, cursor, src, start, limit, bytes, state, entries, eventTimes): bad arguments");
  size_t plan_len, cursor_len, src_len, bytes_len, state_len, entries_len, times_len;
  const int32_t* plan_words = DataOf<int32_t>(args[0], &plan_len);
  double* cursor = DataOf<double>(args[1], &cursor_len);
  const uint8_t* src = DataOf<uint8_t>(args[2], &src_len);
  uint8_t* bytes = DataOf<uint8_t>(args[5], &bytes_len);
  double* state = DataOf<double>(args[6], &state_len);
  uint32_t* entries = DataOf<uint32_t>(args[7], &entries_len);
  double* times = DataOf<double>(args[8], &times_len);
  const double start_arg = args[3].As<v8::Number>()->Value();
  const double limit_arg = args[4].As<v8::Number>()->Value();
  if (cursor_len < kCursorSize || state_len < kBatchSize) return Throw(isolate, "encodeCsvLines: cursor or state too short");
  Plan plan;
  if (!ReadPlan(plan_words, plan_len, cursor[kCursorEventTime], &plan)) return Throw(isolate, "encodeCsvLines: bad plan");
  if (!IsIndex(limit_arg, double(src_len)) || !IsIndex(start_arg, limit_arg))
    return Throw(isolate, "encodeCsvLines: start and limit must be within src");
  double* s = state;
  if (!IsIndex(s[kEnd], double(bytes_len)) || !IsIndex(s[kUsed], s[kEnd]) || !IsIndex(s[kOffset], double(kMaxSegmentBytes)) ||
      !IsIndex(s[kCount], double(entries_len / 4)) || s[kCount] > double(times_len) || !IsIndex(s[kSalt], 4294967295.0) ||
      !IsIndex(s[kSeed], 4294967295.0) || (uint64_t(s[kUsed]) & 7) != 0 || std::isnan(s[kEstimateLimit]))
    return Throw(isolate, "encodeCsvLines: bad record state");

  size_t used = size_t(s[kUsed]);
  const size_t end = size_t(s[kEnd]);
  uint64_t offset = uint64_t(s[kOffset]);
  uint64_t count = uint64_t(s[kCount]);
  const uint32_t salt = uint32_t(s[kSalt]), seed = uint32_t(s[kSeed]);
  const uint64_t max_count = std::min<uint64_t>(entries_len / 4, times_len);
  double min_time = s[kMinEventTime], max_time = s[kMaxEventTime];
  const double estimate_limit = s[kEstimateLimit];

  thread_local std::vector<uint8_t> scratch;
  if (!plan.direct && scratch.size() < size_t(plan.var_start) + plan.line_bytes + 8)
    scratch.assign(size_t(plan.var_start) + plan.line_bytes + 8, 0);

  size_t p = size_t(start_arg);
  const size_t limit = size_t(limit_arg);
  uint32_t lines = 0;
  Stop stop = kStopEnd;
  while (p < limit) {
    // The room RecordTarget.reserve(plan.reserve) would find without a flush, a new part or an
    // error (SegmentEncoder.reserve, PartedRecords.reserve's estimatedBytes): else JS does that.
    const double estimate = double(offset) + CeilPositive(double(count) / 0.7) * 16 + 8192;
    const size_t room = size_t(plan.reserve) + kMaxRecordPad;
    if (used + room > end || offset + room + kTrailerBytes > kMaxSegmentBytes ||
        estimate > estimate_limit || count >= max_count) {
      stop = kStopRoom;
      break;
    }
    uint8_t* rec = bytes + used;
    Line line;
    const size_t next = EncodeLine(plan, src, p, limit, rec, scratch.data(), &line);
    if (next == kFail) {
      stop = kStopDeclined;
      break;
    }
    const uint32_t length = RecordLength(line.key_len, line.value_len);
    if (const uint32_t pad = RecordPad(offset, length)) {
      // As SegmentEncoder.seal: the record moves to the next line, over zeros.
      std::memmove(rec + pad, rec, length);
      std::memset(rec, 0, pad);
      rec += pad;
      used += pad;
      offset += pad;
    }
    FrameRecord(rec, length, line.key_len, line.value_len, line.event_time, salt, uint32_t(offset));
    uint32_t* e = entries + count * 4;
    Hash64(rec + kRecordHeaderBytes, line.key_len, seed, &e[0], &e[1]);
    e[2] = uint32_t(offset);
    e[3] = length;
    const double t = double(line.event_time);
    times[count] = t;
    if (t < min_time) min_time = t;
    if (t > max_time) max_time = t;
    count++;
    used += length;
    offset += length;
    lines++;
    p = next;
  }
  s[kUsed] = double(used);
  s[kOffset] = double(offset);
  s[kCount] = double(count);
  s[kMinEventTime] = min_time;
  s[kMaxEventTime] = max_time;
  cursor[kCursorNext] = double(p);
  cursor[kCursorStop] = stop;
  args.GetReturnValue().Set(lines);
}

}  // namespace

void RegisterCsvEncode(Isolate* isolate, Local<Context> context, Local<Object> exports) {
  exports
      ->Set(context, v8::String::NewFromUtf8(isolate, "encodeCsvLines").ToLocalChecked(),
            v8::FunctionTemplate::New(isolate, EncodeCsvLines)->GetFunction(context).ToLocalChecked())
      .Check();
}

}  // namespace strata
