// libFuzzer target over the safetensors header parser (SafetensorsReader):
// the input is written as a file and opened; every tensor the header lists
// is read.  A malformed header, dtype or offset must end in zerorl::Error
// naming the file; anything else (an out-of-bounds read, an allocation the
// file cannot back, another exception) is a finding.  Run by scripts/fuzz.sh.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>

#include "core/error.h"
#include "core/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path =
      "/tmp/zr_fuzz_safetensors_" + std::to_string(::getpid()) + ".safetensors";
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    zerorl::SafetensorsReader r(path);
    for (const auto& name : r.names()) {
      auto t = r.read(name);
      if (t.numel() > 0 && static_cast<size_t>(t.nbytes()) > size) __builtin_trap();
    }
  } catch (const zerorl::Error&) {
  }
  return 0;
}
