{
  "targets": [
    {
      "target_name": "strata_native",
      "sources": ["strata_native.cc"],
      "cflags_cc": ["-O3", "-std=c++17", "-fno-exceptions", "-Wno-cast-function-type"],
      "cflags_cc!": ["-fno-rtti"]
    }
  ]
}
