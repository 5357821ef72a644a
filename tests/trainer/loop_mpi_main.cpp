// The real GRPO loop with DAPO dynamic sampling under mpirun
// (tests/trainer/CMakeLists.txt):
//
//   -np 1 loop_mpi --runs=DIR   trains the reference run DIR/runs/np1
//   -np 2 loop_mpi --runs=DIR   trains the same recipe on two ranks
//                               (DIR/runs/np2) and checks it against np1
//
// What the two-rank run must show: it finishes (ranks that keep different
// numbers of groups, or none, still take the same rounds: a hang fails the
// ctest's timeout); every step's dynamic-sampling counts equal the one-rank
// run's (the kept groups do not depend on the world size); the final weights
// equal the one-rank run's within a stated tolerance; both ranks hold the
// same weights bit for bit.
//
// The recipe: 2 prompts per step (one per rank per round), G = 4, two
// minibatches of one group each, a cap of 2 rounds, 4 steps.  As seeded it
// takes every path: refills, a step where one rank keeps both groups and
// the other none, a short step whose second minibatch is empty on every
// rank, and a step that keeps nothing (the checks below say if a change
// of the rollout stops it doing so).
#include <cmath>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "core/comm.h"
#include "core/config.h"
#include "core/error.h"
#include "mpi_check.h"
#include "tiny_run.h"
#include "trainer/checkpoint.h"
#include "trainer/grpo_trainer.h"
#include "trainer/run_dir.h"

namespace zerorl {
namespace {

using test::g_failures;
using test::g_rank;

constexpr long kSteps = 4;

TrainResult train(Comm& comm, const std::string& dir, const std::string& name) {
  const std::string runs = dir + "/runs", policy = dir + "/policy.h5";
  if (comm.rank() == 0) {
    remove_tree(runs + "/" + name);
    if (!std::filesystem::exists(policy)) {
      std::filesystem::create_directories(dir);
      test::write_tiny_policy(policy);
    }
  }
  comm.barrier();
  Recipe r = Recipe::from_string(test::tiny_recipe(name, runs, policy), "loop_mpi.yaml");
  std::vector<std::string> o = test::dapo_overrides(2);
  for (std::string x :
       {"train.steps=4", "train.prompts_per_step=2", "train.minibatches=2", "checkpoint.every=0"})
    o.push_back(x);
  r.apply_overrides(o);
  return run_train(r, comm);
}

std::map<std::string, at::Tensor> weights_of(const std::string& file) {
  Checkpoint c = load_checkpoint(file);
  return {c.weights.begin(), c.weights.end()};
}

void compare_with_np1(const std::string& dir, const TrainResult& np2) {
  const std::string np1 = dir + "/runs/np1";
  auto a = test::read_jsonl(np1 + "/metrics.jsonl");
  auto b = test::read_jsonl(np2.run_dir + "/metrics.jsonl");
  CHECK_OR_FAIL(a.size() == static_cast<size_t>(kSteps) && b.size() == a.size(),
                "metrics lines: np1 ", a.size(), ", np2 ", b.size(),
                " (run trainer.mpi.loop_np1 first)");
  bool uneven = false, extra_rounds = false, short_step = false;
  for (size_t s = 0; s < std::min(a.size(), b.size()); ++s) {
    for (auto k : {"dynamic/rounds", "dynamic/groups_drawn", "dynamic/groups_with_signal",
                   "dynamic/groups_kept", "dynamic/short_steps_total"})
      CHECK_OR_FAIL(a[s][k] == b[s][k], "step ", s + 1, " ", k, ": np1 ", a[s][k].dump(), ", np2 ",
                    b[s][k].dump());
    // A mean over ranks sums in another order: 1e-12 is far above that
    // rounding (~1e-16) and far below the smallest real change (one
    // completion one token longer: 1/8 over at most 32 completions).
    const double dr =
        std::abs(a[s]["reward/mean"].get<double>() - b[s]["reward/mean"].get<double>());
    CHECK_OR_FAIL(dr <= 1e-12, "step ", s + 1, " reward/mean differs by ", dr);
    uneven |= b[s]["dynamic/rank_groups_min"] != b[s]["dynamic/rank_groups_max"];
    extra_rounds |= b[s]["dynamic/rounds"].get<double>() > 1;
    short_step |= b[s]["dynamic/groups_kept"].get<double>() == 1;
    std::cout << "step " << s + 1 << ": rounds " << b[s]["dynamic/rounds"] << ", kept "
              << b[s]["dynamic/groups_kept"] << " (per rank " << b[s]["dynamic/rank_groups_min"]
              << ".." << b[s]["dynamic/rank_groups_max"] << ")\n";
  }
  CHECK_OR_FAIL(uneven, "the ranks always kept equal shares: the uneven path was not exercised");
  CHECK_OR_FAIL(extra_rounds, "no step drew a second round: refilling was not exercised");
  CHECK_OR_FAIL(short_step,
                "no step hit the cap with one group: an empty minibatch was not exercised");

  const auto ckpt = [](const std::string& run, int rank) {
    return checkpoint_rank_file(checkpoint_step_dir(run + "/checkpoints", kSteps), rank);
  };
  CHECK_OR_FAIL(checkpoint_weights_hash(ckpt(np2.run_dir, 0)) ==
                    checkpoint_weights_hash(ckpt(np2.run_dir, 1)),
                "the two ranks hold different weights");
  auto w1 = weights_of(ckpt(np1, 0)), w2 = weights_of(ckpt(np2.run_dir, 0));
  double max_diff = 0;
  for (auto& [n, t] : w1)
    max_diff = std::max(max_diff,
                        (t.to(at::kDouble) - w2.at(n).to(at::kDouble)).abs().max().item<double>());
  // fp32 gradients summed in another order (one rank's sum vs two partial
  // sums) differ by ~1 ulp; Adam's per-element normalisation turns that into
  // weight differences of up to ~lr * 1e-3 per update.  1e-5 over 8 updates
  // at lr 1e-3 leaves room for that and still catches a batch that differs
  // by one group (which moves weights by ~lr = 1e-3).
  std::cout << "max |w(np=2) - w(np=1)| = " << max_diff << "\n";
  CHECK_OR_FAIL(max_diff <= 1e-5, "weights differ from the one-rank run by ", max_diff);
}

}  // namespace
}  // namespace zerorl

int main(int argc, char** argv) {
  using namespace zerorl;
  std::string dir;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--runs=", 0) == 0) dir = a.substr(7);
  }
  try {
    ZR_CHECK(!dir.empty(), "usage: loop_mpi --runs=DIR");
    mpi_init_if_launched(&argc, &argv);
    auto comm = make_comm(mpi_active() ? "mpi" : "single");
    g_rank = comm->rank();
    ZR_CHECK(comm->size() <= 2, "runs with one or two ranks, got ", comm->size());
    TrainResult res = train(*comm, dir, comm->size() == 1 ? "np1" : "np2");
    CHECK_OR_FAIL(res.steps_done == kSteps, "steps done: ", res.steps_done);
    if (comm->size() == 2 && comm->rank() == 0) compare_with_np1(dir, res);
    const double failed = comm->allreduce_scalar(g_failures, ReduceOp::kMax);
    if (comm->rank() == 0) std::cout << (failed > 0 ? "FAILED" : "PASSED") << "\n";
    return failed > 0 ? 1 : 0;
  } catch (const std::exception& e) {
    std::cerr << "[rank " << g_rank << "] error: " << e.what() << "\n";
    mpi_abort_all(1);
    return 1;
  }
}
