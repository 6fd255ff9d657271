// encodeCsvLines: plain CSV lines typed straight into segment records (csv_encode.cc).
#ifndef STRATA_CSV_ENCODE_H_
#define STRATA_CSV_ENCODE_H_

#include <v8.h>

namespace strata {

// Adds encodeCsvLines to the addon's exports.
void RegisterCsvEncode(v8::Isolate* isolate, v8::Local<v8::Context> context, v8::Local<v8::Object> exports);

}  // namespace strata

#endif  // STRATA_CSV_ENCODE_H_
