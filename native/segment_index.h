// placeIndexEntries: the placement loop of a segment's index build (segment_index.cc).
#ifndef STRATA_SEGMENT_INDEX_H_
#define STRATA_SEGMENT_INDEX_H_

#include <v8.h>

namespace strata {

// Adds placeIndexEntries to the addon's exports.
void RegisterSegmentIndex(v8::Isolate* isolate, v8::Local<v8::Context> context, v8::Local<v8::Object> exports);

}  // namespace strata

#endif  // STRATA_SEGMENT_INDEX_H_
