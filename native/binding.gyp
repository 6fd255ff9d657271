{
  "targets": [
    {
      "target_name": "strata_native",
      "sources": ["strata_native.cc", "segment_format.cc", "csv_encode.cc", "segment_index.cc", "checksum.cc"],
      "cflags_cc": ["-O3", "-std=c++17", "-fno-exceptions", "-ffp-contract=off", "-Wno-cast-function-type"],
      "cflags_cc!": ["-fno-rtti"]
    }
  ]
}
