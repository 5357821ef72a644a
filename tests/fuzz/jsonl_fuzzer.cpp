// libFuzzer target over the JSONL dataset reader (data::load_jsonl): the
// input is written to a file and read with and without skip_malformed.  Bad
// lines must end in zerorl::Error naming file and line (or be skipped and
// counted); anything else is a finding.  Run by scripts/fuzz.sh.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>

#include "core/error.h"
#include "data/dataset.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/zr_fuzz_jsonl_" + std::to_string(::getpid()) + ".jsonl";
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  for (bool skip : {false, true}) {
    try {
      auto load = zerorl::data::load_jsonl(path, "auto", "auto", skip);
      if (skip && load.skip_reasons.size() > load.skipped) __builtin_trap();
      for (const auto& ex : load.examples) (void)ex.to_jsonl();
    } catch (const zerorl::Error&) {
    }
  }
  return 0;
}
