// The model-independent learner costs: GRPO loss forward + backward on
// per-token log-probs, and one Optimizer::step (bucketed all-reduce, norm,
// clip, AdamW) over a given number of parameters.  Run under mpirun for the
// all-reduce.  Prints medians over --reps.
//
//   build/bench_trainer_learner [--B 64] [--T 1024] [--params-m 10] [--reps 5]
//   mpirun -np 2 build/bench_trainer_learner ...
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/comm.h"
#include "trainer/grad_sync.h"
#include "trainer/grpo_loss.h"
#include "trainer/optimizer.h"

using namespace zerorl;

namespace {
double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
}  // namespace

int main(int argc, char** argv) {
  int64_t B = 64, T = 1024, reps = 5;
  double params_m = 10;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--B")
      B = std::atoll(argv[i + 1]);
    else if (k == "--T")
      T = std::atoll(argv[i + 1]);
    else if (k == "--params-m")
      params_m = std::atof(argv[i + 1]);
    else if (k == "--reps")
      reps = std::atoll(argv[i + 1]);
    else {
      std::fprintf(stderr, "unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  mpi_init_if_launched(&argc, &argv);
  auto comm = make_comm("auto");
  at::manual_seed(comm->rank());

  // ---- loss --------------------------------------------------------------------
  const at::Tensor logp0 = -at::rand({B, T}) * 3;
  LossInputs in;
  in.old_logp_BT = logp0 + 0.1 * at::randn({B, T});
  in.ref_logp_BT = logp0 + 0.1 * at::randn({B, T});
  in.advantages_B = at::randn({B});
  in.mask_BT = at::arange(T).unsqueeze(0) < at::randint(1, T + 1, {B, 1});
  for (const char* agg : {"grpo", "dapo", "dr_grpo"}) {
    LossConfig c;
    c.aggregation = std::string(agg) == "grpo"   ? LossConfig::Aggregation::kGrpo
                    : std::string(agg) == "dapo" ? LossConfig::Aggregation::kDapo
                                                 : LossConfig::Aggregation::kDrGrpo;
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
      std::printf("loss fwd+bwd %-8s B=%ld T=%ld: %.2f ms (%.1f Mtok/s)\n", agg, (long)B, (long)T,
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
