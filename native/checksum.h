// crc32: a synchronous CRC-32 of a view (checksum.cc).
#ifndef STRATA_CHECKSUM_H_
#define STRATA_CHECKSUM_H_

#include <v8.h>

namespace strata {

// Adds crc32 to the addon's exports.
void RegisterChecksum(v8::Isolate* isolate, v8::Local<v8::Context> context, v8::Local<v8::Object> exports);

}  // namespace strata

#endif  // STRATA_CHECKSUM_H_
