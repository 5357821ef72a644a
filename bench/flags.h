// What every benchmark binary reads the same way: "--name value" flags over a
// table of defaults, and waiting for the device before reading a clock.
#pragma once

#include <cstdio>
#include <map>
#include <string>

#ifdef ZERORL_WITH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace zerorl::bench {

// Overwrites `flags` (the defaults, which also name every known flag) with
// argv's "--name value" pairs. On a flag the table lacks it names it on stderr
// and returns false; the caller exits with status 2.
inline bool read_flags(int argc, char** argv, std::map<std::string, std::string>& flags) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k.rfind("--", 0) != 0 || !flags.count(k.substr(2))) {
      std::fprintf(stderr, "unknown flag %s\n", argv[i]);
      return false;
    }
    flags[k.substr(2)] = argv[i + 1];
  }
  return true;
}

// Blocks until the GPU has finished its queued work (a no-op on the CPU, or in
// a build without CUDA).
inline void sync_device(bool cuda) {
#ifdef ZERORL_WITH_CUDA
  if (cuda) c10::cuda::device_synchronize();
#else
  (void)cuda;
#endif
}

}  // namespace zerorl::bench
