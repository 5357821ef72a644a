#include "core/comm_config.h"

#include <cmath>

namespace zerorl {

CommConfig CommConfig::from(const ConfigNode& root) {
  ConfigNode n;
  try {
    n = root.section("comm");
  } catch (const Error& e) {
    throw Error(str_cat(e.what(), "; comm is a section: write comm: {backend: mpi} (keys backend, ",
                        "timeout_s)"));
  }
  CommConfig c;
  c.backend = n.choice("backend", {"auto", "single", "mpi", "nccl"}, c.backend);
  c.timeout_s = n.get<double>("timeout_s", c.timeout_s);
  ZR_CHECK(std::isfinite(c.timeout_s) && c.timeout_s >= 0, n.where("timeout_s"),
           ": comm.timeout_s must be a number of seconds >= 0 (0 waits forever), got ",
           c.timeout_s);
  return c;
}

std::unique_ptr<Comm> make_comm(const CommConfig& c) {
  set_collective_timeout(c.timeout_s);
  return make_comm(c.backend);
}

}  // namespace zerorl
