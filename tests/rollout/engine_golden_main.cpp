// Writes tests/rollout/data/engine_golden.txt (see engine_golden.h): the
// scenarios' completions from the engine this program is linked with.  The
// checked-in file came from commit 1208403, the last engine with one
// contiguous cache window per slot; it is not part of the build.  To rebuild
// it by hand, compile this file with the flags of zr_rollout_tests and link
// it with that commit's zr_rollout, zr_model, zr_data and zr_core.
#include <ATen/Parallel.h>

#include <cstdio>

#include "tests/rollout/engine_golden.h"

int main() {
  using namespace zerorl::rollout;
  at::set_num_threads(1);
  for (const golden::Scenario& s : golden::scenarios()) {
    auto m = zerorl::test::make_policy(golden::config_of(s));
    Engine engine(EngineOptions().slots(s.num_slots).eos(-1));
    const RolloutBatch b =
        engine.generate(*m, golden::prompts_of(s, m->config().vocab_size), s.group_size, s.params);
    for (const std::string& line : golden::lines_of(s, b)) std::printf("%s\n", line.c_str());
  }
  return 0;
}
