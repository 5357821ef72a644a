// The real GRPO loop with ZeRO sharding and resharding resume under mpirun
// (tests/trainer/CMakeLists.txt, label mpi):
//
//   zero_mpi --runs=DIR --name=N [--zero=Z] [--dtype=fp32|bf16] [--steps=S]
//            [--resume=PATH] [--compare=RUN --tol=T]
//
// trains run N (DIR/runs/N) with train.zero = Z on however many ranks mpirun
// gave it, optionally resuming from checkpoint PATH (any world size), and
// then checks: every rank holds the same weights bit for bit (each rank file
// records the hash of the weights that rank holds); with --compare, the
// final weights are within T (max abs) of run RUN's checkpoint at the same
// step, and clipping was active in some step (so the sharded global norm
// mattered).
//
// The recipe: 8 prompts per step, G = 4, two minibatches: minibatch m takes
// the groups whose place in the step's batch is = m (mod 2), and rank r of W
// holds places [8r/W, 8(r+1)/W), so at W = 1, 2 and 4 every rank has
// completions in every minibatch (its all-reduce / reduce-scatter sums real
// gradients from every rank).  lr 1e-4, max_grad_norm 0.05 (clipping on),
// a checkpoint every step.
#include <ATen/ATen.h>

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

constexpr double kMaxGradNorm = 0.05;

struct Args {
  std::string dir, name, dtype = "fp32", resume, compare;
  long zero = 0, steps = 6;
  double tol = 1e-6;
};

TrainResult train(Comm& comm, const Args& a) {
  const std::string runs = a.dir + "/runs", policy = a.dir + "/policy.h5";
  if (comm.rank() == 0) {
    remove_tree(runs + "/" + a.name);
    if (!std::filesystem::exists(policy)) {
      std::filesystem::create_directories(a.dir);
      test::write_tiny_policy(policy + ".w");
      std::filesystem::rename(policy + ".w", policy);  // parallel ctests never see half a file
    }
  }
  comm.barrier();
  Recipe r = Recipe::from_string(test::tiny_recipe(a.name, runs, policy), "zero_mpi.yaml");
  r.apply_overrides({"train.steps=" + std::to_string(a.steps), "train.prompts_per_step=8",
                     "train.minibatches=2", "train.zero=" + std::to_string(a.zero),
                     "policy.dtype=" + a.dtype, "optimizer.lr=1.0e-4",
                     "optimizer.max_grad_norm=" + std::to_string(kMaxGradNorm), "eval.every=0",
                     "checkpoint.every=1", "checkpoint.keep_last=10"});
  return run_train(r, comm, a.resume);
}

std::map<std::string, at::Tensor> weights_of(const std::string& step_dir) {
  Checkpoint c = load_checkpoint(checkpoint_rank_file(step_dir, 0));
  return {c.weights.begin(), c.weights.end()};
}

void check(Comm& comm, const Args& a, const TrainResult& res) {
  CHECK_OR_FAIL(res.steps_done == a.steps, "steps done: ", res.steps_done);
  const std::string step_dir = checkpoint_step_dir(res.run_dir + "/checkpoints", a.steps);
  comm.barrier();
  if (comm.rank() != 0) return;
  // Every rank's weights, as each rank held them (all-gather correctness).
  const auto files = list_rank_files(step_dir);
  CHECK_OR_FAIL(static_cast<int>(files.size()) == comm.size(), files.size(), " rank files");
  std::string h0;
  for (const auto& f : files) {
    Checkpoint c = load_checkpoint(f);
    const std::string h = c.strings.count("weights_hash") ? c.strings["weights_hash"] : "";
    CHECK_OR_FAIL(!h.empty(), f, " records no weights_hash");
    if (h0.empty()) h0 = h;
    CHECK_OR_FAIL(h == h0, f, ": rank ", c.rank, " holds other weights than rank 0");
  }
  if (a.compare.empty()) return;
  const std::string other =
      checkpoint_step_dir(a.dir + "/runs/" + a.compare + "/checkpoints", a.steps);
  auto w1 = weights_of(other), w2 = weights_of(step_dir);
  CHECK_OR_FAIL(w1.size() == w2.size() && !w1.empty(), "weights: ", w1.size(), " vs ", w2.size(),
                " (run the reference ctest first)");
  double max_diff = 0;
  for (auto& [n, t] : w1) {
    if (!w2.count(n)) continue;
    max_diff = std::max(max_diff,
                        (t.to(at::kDouble) - w2.at(n).to(at::kDouble)).abs().max().item<double>());
  }
  std::cout << "max |w(" << a.name << ") - w(" << a.compare << ")| = " << max_diff << "\n";
  CHECK_OR_FAIL(max_diff <= a.tol, "weights differ from ", a.compare, " by ", max_diff, " > ",
                a.tol);
  // Clipping was active somewhere, so the global norm entered the update.
  bool clipped = false;
  for (const auto& m : test::read_jsonl(res.run_dir + "/metrics.jsonl"))
    clipped |= m["optim/grad_norm"].get<double>() > kMaxGradNorm;
  CHECK_OR_FAIL(clipped, "no step clipped: the sharded global norm was not exercised");
}

}  // namespace
}  // namespace zerorl

int main(int argc, char** argv) {
  using namespace zerorl;
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    auto val = [&](const char* k) -> const char* {
      const std::string key = std::string(k) + "=";
      return s.rfind(key, 0) == 0 ? argv[i] + key.size() : nullptr;
    };
    if (auto v = val("--runs")) a.dir = v;
    if (auto v = val("--name")) a.name = v;
    if (auto v = val("--zero")) a.zero = std::stol(v);
    if (auto v = val("--dtype")) a.dtype = v;
    if (auto v = val("--steps")) a.steps = std::stol(v);
    if (auto v = val("--resume")) a.resume = v;
    if (auto v = val("--compare")) a.compare = v;
    if (auto v = val("--tol")) a.tol = std::stod(v);
  }
  try {
    ZR_CHECK(!a.dir.empty() && !a.name.empty(), "usage: zero_mpi --runs=DIR --name=N ...");
    mpi_init_if_launched(&argc, &argv);
    auto comm = make_comm(mpi_active() ? "mpi" : "single");
    g_rank = comm->rank();
    TrainResult res = train(*comm, a);
    check(*comm, a, res);
    const double failed = comm->allreduce_scalar(g_failures, ReduceOp::kMax);
    if (comm->rank() == 0) std::cout << (failed > 0 ? "FAILED" : "PASSED") << "\n";
    return failed > 0 ? 1 : 0;
  } catch (const std::exception& e) {
    std::cerr << "[rank " << g_rank << "] error: " << e.what() << "\n";
    mpi_abort_all(1);
    return 1;
  }
}
