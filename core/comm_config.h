// The recipe's `comm:` section, read in one place:
//
//   comm:
//     backend: auto     # auto | single | mpi | nccl (core/comm.h)
//     timeout_s: 600    # seconds a collective may wait before the job is
//                       # ended naming the ranks that did not arrive; 0 waits
//                       # forever (core/collective_timeout.h)
//
// Read once: `zerorl train`, `pretrain` and `eval` read it with
// CommConfig::from before any collective and make their Comm with
// make_comm(CommConfig).  The run they hand the Comm to reads the same
// Recipe, so its keys already count as read and their defaults are in the
// resolved recipe; the run does not read them again.
//
// A bare `comm: mpi` (the form before the section) is refused naming its
// line and the section form to write instead.
#pragma once

#include <memory>
#include <string>

#include "core/collective_timeout.h"
#include "core/comm.h"
#include "core/config.h"

namespace zerorl {

struct CommConfig {
  std::string backend = "auto";
  double timeout_s = kDefaultCollectiveTimeoutS;

  // Reads the `comm` section of the recipe root `root`; a bad backend or a
  // negative or non-finite timeout throws naming the key and its line.
  static CommConfig from(const ConfigNode& root);
};

// Sets the process-wide collective timeout (set_collective_timeout) and
// makes the Comm of c.backend.
std::unique_ptr<Comm> make_comm(const CommConfig& c);

}  // namespace zerorl
