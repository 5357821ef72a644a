// Learner costs, two ways.  Run under mpirun for the all-reduce.
//
// 1. --recipe: the real GRPO loop (run_train) for --steps steps of a recipe,
//    policy and batch included; prints the median over steps 2.. (step 1
//    warms up allocators) of the learner's per-phase wall-clock times that
//    the loop records in metrics.jsonl (rank 0's clock; grpo_trainer.h):
//    reference (packing + reference log-probs), old log-probs, forward +
//    backward, gradient all-reduce, optimizer (norm, clip, AdamW), the
//    learner's total (wall and rank 0's process CPU time) and tokens/s.
//    Evaluation, samples and intermediate checkpoints are off; extra
//    key=value arguments override the recipe.
//
//   build/bench_trainer_learner --recipe recipes/r1zero-tiny.yaml [--steps 6] [key=value ...]
//   mpirun -np 2 build/bench_trainer_learner --recipe ...
//
// 2. Otherwise, the model-independent pieces: GRPO loss forward + backward
//    on per-token log-probs, and one Optimizer::step (bucketed all-reduce,
//    norm, clip, AdamW) over a given number of parameters; medians over --reps.
//
//   build/bench_trainer_learner [--B 64] [--T 1024] [--params-m 10] [--reps 5]
//   mpirun -np 2 build/bench_trainer_learner ...
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/comm.h"
#include "core/config.h"
#include "core/error.h"
#include "trainer/grad_sync.h"
#include "trainer/grpo_trainer.h"
#include "trainer/grpo_loss.h"
#include "trainer/optimizer.h"
#include "trainer/run_dir.h"

using namespace zerorl;

namespace {
double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
double median(std::vector<double> v) {
  if (v.empty()) return std::nan("");  // e.g. a phase no step ran
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
// Mode 1: the loop's own timings of a short run of the recipe.
int bench_recipe(Comm& comm, const std::string& path, long steps,
                 std::vector<std::string> overrides) {
  ZR_CHECK(steps >= 2, "--steps must be >= 2 (step 1 is the warm-up)");
  const std::string dir =
      (std::filesystem::temp_directory_path() / "zerorl_bench_learner").string();
  const std::string name = "np" + std::to_string(comm.size());
  if (comm.rank() == 0) remove_tree(dir + "/" + name);
  comm.barrier();
  Recipe recipe = Recipe::from_file(path);
  // The bench's settings first, so that the command line's win.
  std::vector<std::string> all = {
      "run.dir=" + dir, "run.name=" + name,     "train.steps=" + std::to_string(steps),
      "eval.every=0",   "train.sample_every=0", "checkpoint.every=0"};
  all.insert(all.end(), overrides.begin(), overrides.end());
  recipe.apply_overrides(all);
  TrainResult res = run_train(recipe, comm);
  if (comm.rank() == 0) {
    std::map<std::string, std::vector<double>> t;
    std::vector<double> tokens, completions;
    std::ifstream in(res.run_dir + "/metrics.jsonl");
    std::string line;
    for (long step = 1; std::getline(in, line); ++step) {
      if (step == 1) continue;
      auto j = nlohmann::json::parse(line);
      for (auto& [k, v] : j["time"].items()) t[k].push_back(v.get<double>());
      tokens.push_back(j.value("learner/tokens", 0.0));
      completions.push_back(j.value("loss/num_tokens", 0.0));  // absent when an update was skipped
    }
    const double learner = median(t["learner"]);
    std::printf("%s, %d rank(s) (%s), median of steps 2..%ld:\n", path.c_str(), comm.size(),
                comm.backend().c_str(), steps);
    std::printf("  batch: %.0f tokens teacher-forced (%.0f completion tokens)\n", median(tokens),
                median(completions));
    for (const char* k : {"reference", "old_logprobs", "fwd_bwd", "grad_sync", "optimizer"})
      std::printf("  %-13s %8.1f ms  %5.1f%%\n", k, median(t[k]) * 1e3,
                  100 * median(t[k]) / learner);
    std::printf("  %-13s %8.1f ms  (update %.1f ms; CPU time %.1f ms)\n", "learner", learner * 1e3,
                median(t["update"]) * 1e3, median(t["learner_cpu"]) * 1e3);
    std::printf("  learner tokens/s %.0f; rollout %.1f ms (%.0f tokens/s)\n",
                median(t["learner_tokens_per_s"]), median(t["rollout"]) * 1e3,
                median(t["rollout_tokens_per_s"]));
  }
  return 0;
}

}  // namespace

// A benchmark's main reads top to bottom as the table it prints (~115 lines).
int main(int argc, char** argv) {
  int64_t B = 64, T = 1024, reps = 5;
  double params_m = 10;
  std::string recipe;
  long steps = 6;
  std::vector<std::string> overrides;
  for (int i = 1; i < argc; ++i) {
    if (std::strchr(argv[i], '=') && argv[i][0] != '-') {
      overrides.push_back(argv[i]);
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "flag %s needs a value\n", argv[i]);
      return 2;
    }
    const std::string k = argv[i++];
    if (k == "--recipe")
      recipe = argv[i];
    else if (k == "--steps")
      steps = std::atol(argv[i]);
    else if (k == "--B")
      B = std::atoll(argv[i]);
    else if (k == "--T")
      T = std::atoll(argv[i]);
    else if (k == "--params-m")
      params_m = std::atof(argv[i]);
    else if (k == "--reps")
      reps = std::atoll(argv[i]);
    else {
      std::fprintf(stderr, "unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  mpi_init_if_launched(&argc, &argv);
  auto comm = make_comm("auto");
  at::manual_seed(comm->rank());
  if (!recipe.empty()) {
    try {
      return bench_recipe(*comm, recipe, steps, overrides);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      mpi_abort_all(1);
      return 1;
    }
  }

  // ---- loss --------------------------------------------------------------------
  const at::Tensor logp0 = -at::rand({B, T}) * 3;
  LossInputs in;
  in.old_logp_BT = logp0 + 0.1 * at::randn({B, T});
  in.ref_logp_BT = logp0 + 0.1 * at::randn({B, T});
  in.advantages_B = at::randn({B});
  in.mask_BT = at::arange(T).unsqueeze(0) < at::randint(1, T + 1, {B, 1});
  in.behaviour_logp_BT = in.old_logp_BT + 1e-3 * at::randn({B, T});
  using A = LossConfig::Aggregation;
  using RL = LossConfig::RatioLevel;
  using BIS = LossConfig::BehaviourIs;
  struct Named {
    const char* name;
    A agg;
    RL level;
    BIS bis;
  };
  for (const Named& v : {Named{"grpo", A::kGrpo, RL::kToken, BIS::kNone},
                         Named{"dapo", A::kDapo, RL::kToken, BIS::kNone},
                         Named{"dr_grpo", A::kDrGrpo, RL::kToken, BIS::kNone},
                         Named{"gspo", A::kGrpo, RL::kSequence, BIS::kNone},
                         Named{"gspo_tok", A::kGrpo, RL::kSequenceToken, BIS::kNone},
                         Named{"cispo", A::kCispo, RL::kToken, BIS::kNone},
                         Named{"grpo+tis", A::kGrpo, RL::kToken, BIS::kTruncate},
                         Named{"grpo+seqm", A::kGrpo, RL::kToken, BIS::kSequenceMask}}) {
    const char* agg = v.name;
    LossConfig c;
    c.aggregation = v.agg;
    c.ratio_level = v.level;
    c.behaviour_is = v.bis;
    c.beta = 0.04;
    c.eps_high = 0.28;
    c.max_completion_length = T;
    std::vector<double> t;
    for (int64_t r = 0; r < reps + 1; ++r) {
      in.logp_BT = logp0.clone().requires_grad_(true);
      const double t0 = now();
      LossOutput out = grpo_loss(in, c);
      out.loss.backward();
      if (r > 0) t.push_back(now() - t0);  // first run warms up allocators
    }
    if (comm->rank() == 0)
      std::printf("loss fwd+bwd %-9s B=%ld T=%ld: %.2f ms (%.1f Mtok/s)\n", agg, (long)B, (long)T,
                  median(t) * 1e3, B * T / median(t) / 1e6);
  }

  // ---- optimizer step -------------------------------------------------------------
  const int64_t n_total = static_cast<int64_t>(params_m * 1e6), n_tensors = 32;
  std::vector<NamedParam> ps;
  for (int64_t i = 0; i < n_tensors; ++i)
    ps.push_back(
        {"p" + std::to_string(i), at::randn({n_total / n_tensors}).requires_grad_(true), true});
  OptimizerConfig oc;
  oc.lr = 1e-4;
  oc.weight_decay = 0.01;
  Optimizer opt(ps, oc, *comm);
  std::vector<double> t;
  for (int64_t r = 0; r < reps + 1; ++r) {
    for (auto& p : ps) p.param.mutable_grad() = at::randn_like(p.param);
    comm->barrier();
    const double t0 = now();
    opt.step();
    if (r > 0) t.push_back(now() - t0);
  }
  if (comm->rank() == 0)
    std::printf("optimizer step (%s x%d, %.1fM fp32 params, %ld buckets): %.1f ms\n",
                comm->backend().c_str(), comm->size(), params_m,
                (long)opt.grad_sync().num_buckets(), median(t) * 1e3);
  return 0;
}
