// Multi-rank learner checks, run under real mpirun (tests/trainer/CMakeLists.txt):
//
//   -np 1 --write-ref=F    trains the reference run and writes its weights to F
//   -np 2 --compare-ref=F  trains the same global batch on two ranks and
//                          requires the same weights (<= 1e-6) as F and as an
//                          in-process single-rank run; then overlap on vs
//                          off (same bits), the NaN-skip, undefined-gradient
//                          and metric-reduction checks.
//
// The model is a 2-layer MLP over random token features, written here (the
// policy model is not the point): logits_BTV = tanh(x_BTD W1 + b1) W2 + b2,
// trained with the real GRPO pieces: compute_advantages, grpo_loss with a
// step-wide LossScale, mu = 2 inner updates of 2 micro-batches each, and
// Optimizer (bucketed all-reduce, clipping, cosine schedule, AdamW).
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "core/comm.h"
#include "core/error.h"
#include "tests/mpi_check.h"
#include "trainer/advantages.h"
#include "trainer/grad_sync.h"
#include "trainer/grpo_loss.h"
#include "trainer/optimizer.h"

namespace zerorl {
namespace {

using test::g_failures;
using test::g_rank;

constexpr int64_t kGroups = 4, kG = 4, kT = 6, kD = 8, kH = 16, kV = 5, kSteps = 3, kMu = 2;

at::Tensor randn(std::mt19937_64& gen, std::vector<int64_t> shape, double scale = 1.0) {
  std::normal_distribution<double> nrm(0, scale);
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(nrm(gen));
  return at::tensor(v, at::kFloat).view(shape);
}

struct Mlp {
  std::vector<NamedParam> params;
  explicit Mlp(uint64_t seed, at::ScalarType dt = at::kFloat) {
    std::mt19937_64 gen(seed);
    params = {{"w1", randn(gen, {kD, kH}, 0.5).to(dt).requires_grad_(true), true},
              {"b1", randn(gen, {kH}, 0.1).to(dt).requires_grad_(true), false},
              {"w2", randn(gen, {kH, kV}, 0.5).to(dt).requires_grad_(true), true},
              {"b2", randn(gen, {kV}, 0.1).to(dt).requires_grad_(true), false}};
  }
  // log-softmax over the vocabulary, [B, T, V]
  at::Tensor logprobs(const at::Tensor& x_BTD) const {
    const at::Tensor h = at::tanh(at::matmul(x_BTD, params[0].param) + params[1].param);
    return at::log_softmax(at::matmul(h, params[2].param) + params[3].param, -1);
  }
  at::Tensor flat() const {
    std::vector<at::Tensor> v;
    for (const auto& p : params) v.push_back(p.param.detach().reshape({-1}));
    return at::cat(v).to(at::kDouble);
  }
};

// One step's global batch, identical on every rank (seeded by step).
struct GlobalBatch {
  at::Tensor x_BTD, tok_BT, mask_BT;
  std::vector<double> rewards;
};

GlobalBatch make_batch(int64_t step) {
  std::mt19937_64 gen(1000 + step);
  GlobalBatch b;
  const int64_t B = kGroups * kG;
  b.x_BTD = randn(gen, {B, kT, kD});
  std::uniform_int_distribution<int64_t> tok(0, kV - 1), len(1, kT);
  std::vector<int64_t> t(B * kT), m(B * kT);
  for (int64_t i = 0; i < B; ++i) {
    const int64_t L = len(gen);
    for (int64_t j = 0; j < kT; ++j) {
      t[i * kT + j] = tok(gen);
      m[i * kT + j] = j < L;
    }
  }
  b.tok_BT = at::tensor(t, at::kLong).view({B, kT});
  b.mask_BT = at::tensor(m, at::kLong).view({B, kT}) != 0;
  std::uniform_int_distribution<int> coin(0, 1);
  for (int64_t i = 0; i < B; ++i) b.rewards.push_back(coin(gen) + 0.1 * (i % 3));
  // Group 1 all equal: zero advantage, still part of every normaliser.
  for (int64_t i = kG; i < 2 * kG; ++i) b.rewards[i] = 1.0;
  return b;
}

at::Tensor rows(const at::Tensor& t, int64_t r0, int64_t r1) { return t.narrow(0, r0, r1 - r0); }

// Trains kSteps GRPO steps on this rank's share of the global batches and
// returns the final weights followed by the gradient norm of every update:
// Adam (and clipping) would hide a gradient that is off by a constant factor
// (a sum/mean or normaliser mistake) from the weights, not from the norms.
// overlap: train.overlap_grad_sync, armed before each update's last
// micro-batch; *posted (when given) adds the buckets posted during backward.
at::Tensor train(Comm& comm, LossConfig::Aggregation agg, at::ScalarType dt, bool overlap = true,
                 int64_t* posted = nullptr) {
  Mlp model(7, dt), ref_model(7, dt);
  for (auto& p : ref_model.params) p.param.requires_grad_(false);
  OptimizerConfig oc;
  oc.lr = 2e-2;
  oc.weight_decay = 0.01;
  oc.warmup_steps = 2;
  oc.schedule = OptimizerConfig::Schedule::kCosine;
  oc.total_steps = kSteps * kMu;
  oc.max_grad_norm = 0.5;
  // ~300 bytes (bf16: 75): several buckets
  oc.bucket_mb = (dt == at::kBFloat16 ? 75.0 : 300.0) / (1024 * 1024);
  oc.overlap_grad_sync = overlap;
  Optimizer opt(model.params, oc, comm);
  ZR_CHECK(opt.grad_sync().num_buckets() >= 3, "expected several buckets, got ",
           opt.grad_sync().num_buckets());
  LossConfig lc;
  lc.aggregation = agg;
  lc.eps_low = 0.2;
  lc.eps_high = 0.28;
  lc.beta = 0.04;
  lc.entropy_coef = 0.01;
  lc.max_completion_length = kT;
  AdvantageConfig ac;
  std::vector<double> norms;

  const int64_t groups_per_rank = kGroups / comm.size();
  const int64_t r0 = comm.rank() * groups_per_rank * kG, r1 = r0 + groups_per_rank * kG;
  for (int64_t step = 0; step < kSteps; ++step) {
    const GlobalBatch gb = make_batch(step);
    const at::Tensor x = rows(gb.x_BTD, r0, r1).to(dt), tok = rows(gb.tok_BT, r0, r1).unsqueeze(-1);
    const at::Tensor mask = rows(gb.mask_BT, r0, r1);
    const std::vector<double> my_rewards(gb.rewards.begin() + r0, gb.rewards.begin() + r1);
    const GroupAdvantages adv = compute_advantages(my_rewards, kG, ac);
    const at::Tensor adv_B = at::tensor(adv.advantages, at::kDouble).to(dt);
    at::Tensor old_logp, ref_logp;
    {
      at::NoGradGuard ng;
      old_logp = model.logprobs(x).gather(-1, tok).squeeze(-1);
      ref_logp = ref_model.logprobs(x).gather(-1, tok).squeeze(-1);
    }
    const int64_t B = r1 - r0, half = B / 2;
    const std::vector<std::pair<int64_t, int64_t>> micro = {{0, half}, {half, B}};
    for (int64_t inner = 0; inner < kMu; ++inner) {
      LossScale scale;
      for (auto [a, b] : micro) scale += LossScale::of(rows(mask, a, b));
      scale = scale.allreduced(comm);
      bool finite = true;
      for (auto [a, b] : micro) {
        const at::Tensor lp_BTV = model.logprobs(rows(x, a, b));
        LossInputs in;
        in.logp_BT = lp_BTV.gather(-1, rows(tok, a, b)).squeeze(-1);
        in.old_logp_BT = rows(old_logp, a, b);
        in.ref_logp_BT = rows(ref_logp, a, b);
        in.advantages_B = rows(adv_B, a, b);
        in.mask_BT = rows(mask, a, b);
        in.entropy_BT = -(lp_BTV.exp() * lp_BTV).sum(-1);
        LossOutput out = grpo_loss(in, lc, scale);
        finite = finite && std::isfinite(out.stats.loss);
        if (b == B) opt.overlap_next_backward();
        out.loss.backward();
      }
      if (posted) *posted += opt.grad_sync().buckets_posted_in_backward();
      const StepReport r = opt.step(finite);
      ZR_CHECK(r.applied, "step ", step, " inner ", inner, " was skipped");
      norms.push_back(r.grad_norm);
    }
  }
  return at::cat({model.flat(), at::tensor(norms, at::kDouble)});
}

const std::vector<LossConfig::Aggregation> kAggs = {LossConfig::Aggregation::kGrpo,
                                                    LossConfig::Aggregation::kDapo,
                                                    LossConfig::Aggregation::kDrGrpo};

// Rows: the three aggregations in float64, then in float32 (as doubles).
at::Tensor train_all(Comm& comm) {
  std::vector<at::Tensor> w;
  for (auto dt : {at::kDouble, at::kFloat})
    for (auto agg : kAggs) w.push_back(train(comm, agg, dt));
  return at::stack(w);
}

// float64 must agree to the 1e-6 (it does to ~1e-15: only the
// summation order differs).  float32 gets 1e-5: fp32 rounding (ulp 1.2e-7 at
// |w| ~ 1) of differently ordered sums, amplified by Adam's normalisation
// over 6 updates, measured at 7e-7; a wrong normaliser or a missing
// reduction moves weights by > 1e-3.
double tolerance_of_row(int64_t i) { return i < 3 ? 1e-6 : 1e-5; }
const char* dtype_of_row(int64_t i) { return i < 3 ? "f64" : "f32"; }

void write_ref(const at::Tensor& w, const std::string& path) {
  std::ofstream f(path, std::ios::binary);
  ZR_CHECK(f.good(), "cannot write ", path);
  f.write(static_cast<const char*>(w.data_ptr()), w.numel() * sizeof(double));
}

at::Tensor read_ref(const std::string& path, const at::Tensor& like) {
  std::ifstream f(path, std::ios::binary);
  ZR_CHECK(f.good(), "cannot read ", path, ": run trainer.mpi.np1 first");
  at::Tensor w = at::empty_like(like);
  f.read(static_cast<char*>(w.data_ptr()), w.numel() * sizeof(double));
  ZR_CHECK(f.gcount() == static_cast<std::streamsize>(w.numel() * sizeof(double)), path,
           " is truncated");
  return w;
}

void check_world_size_invariance(Comm& comm, const std::string& ref_path) {
  const at::Tensor dist = train_all(comm);
  auto single = make_comm("single");
  const at::Tensor one = train_all(*single);
  const Mlp init(7);
  const at::Tensor w0 = init.flat();
  const double moved = (one[0].narrow(0, 0, w0.numel()) - w0).abs().max().item<double>();
  CHECK_OR_FAIL(moved > 1e-2, "training barely moved the weights (", moved,
                "): the test would be vacuous");
  const at::Tensor ref = ref_path.empty() ? at::Tensor() : read_ref(ref_path, dist);
  for (int64_t i = 0; i < dist.size(0); ++i) {
    const std::string what = str_cat(to_string(kAggs[i % 3]), " ", dtype_of_row(i));
    const double d = (dist[i] - one[i]).abs().max().item<double>();
    std::cout << "[rank " << comm.rank() << "] " << what << ": max |w(np=" << comm.size()
              << ") - w(in-process np=1)| = " << d;
    CHECK_OR_FAIL(d <= tolerance_of_row(i), what, " differs by ", d);
    if (ref.defined()) {
      const double dr = (dist[i] - ref[i]).abs().max().item<double>();
      std::cout << ", - w(mpirun -np 1)| = " << dr;
      CHECK_OR_FAIL(dr <= tolerance_of_row(i), what, " differs from the mpirun -np 1 weights by ",
                    dr);
    }
    std::cout << "\n";
  }
  // Every rank holds the same weights.
  const at::Tensor all = comm.allgather(dist.contiguous());
  CHECK_OR_FAIL(at::equal(all[0], all[comm.size() - 1]), "ranks disagree on the weights");
}

// train.overlap_grad_sync on and off give the same bits (fp64, fp32, and
// bf16, whose buckets MPI sums in fp32), and with it on, buckets really went
// out during backward on this rank.
void check_overlap_same_bits(Comm& comm) {
  for (auto dt : {at::kDouble, at::kFloat, at::kBFloat16}) {
    int64_t posted = 0;
    const at::Tensor on = train(comm, LossConfig::Aggregation::kGrpo, dt, true, &posted);
    const at::Tensor off = train(comm, LossConfig::Aggregation::kGrpo, dt, false);
    CHECK_OR_FAIL(at::equal(on, off), at::toString(dt), ": overlap on and off differ by ",
                  (on - off).abs().max().item<double>());
    CHECK_OR_FAIL(posted > 0, at::toString(dt), ": no bucket was posted during backward");
    std::cout << "[rank " << comm.rank() << "] " << at::toString(dt)
              << ": overlap on == off bit for bit; " << posted
              << " buckets posted during backward\n";
  }
}

void check_nan_skips_on_every_rank(Comm& comm) {
  Mlp model(11);
  OptimizerConfig oc;
  oc.lr = 1e-2;
  oc.bucket_mb = 300.0 / (1024 * 1024);
  Optimizer opt(model.params, oc, comm);
  std::mt19937_64 gen(50 + comm.rank());
  auto grads = [&] {
    for (auto& p : model.params) p.param.mutable_grad() = randn(gen, p.param.sizes().vec());
  };
  // A NaN in one gradient element of rank 1 only.
  const at::Tensor before = model.flat().clone();
  grads();
  if (comm.rank() == 1) model.params[2].param.mutable_grad()[3][1] = std::nanf("");
  StepReport r = opt.step(true);
  CHECK_OR_FAIL(!r.applied, "a NaN gradient on rank 1 did not skip the step on rank ", comm.rank());
  CHECK_OR_FAIL(r.num_skipped == 1 && r.num_updates == 0, "skipped=", r.num_skipped,
                " updates=", r.num_updates);
  CHECK_OR_FAIL(at::equal(model.flat(), before), "weights changed on a skipped step");
  // A non-finite loss on rank 0 only, with finite gradients everywhere.
  grads();
  r = opt.step(comm.rank() != 0);
  CHECK_OR_FAIL(!r.applied && r.num_skipped == 2,
                "a NaN loss on rank 0 did not skip the step everywhere");
  CHECK_OR_FAIL(at::equal(model.flat(), before), "weights changed on a skipped step");
  // Then a clean step applies on every rank, identically.
  grads();
  r = opt.step(true);
  CHECK_OR_FAIL(r.applied && r.num_updates == 1 && r.num_skipped == 2,
                "the clean step after skips");
  CHECK_OR_FAIL(!at::equal(model.flat(), before), "the clean step did not move the weights");
  const at::Tensor all = comm.allgather(model.flat());
  CHECK_OR_FAIL(at::equal(all[0], all[1]), "ranks disagree after the clean step");
  std::cout << "[rank " << comm.rank()
            << "] NaN on one rank: skipped on every rank, weights kept\n";
}

void check_undefined_grad_is_zero(Comm& comm) {
  // An expert that saw no tokens on rank 0 has no .grad() there; the sum is rank 1's.
  std::vector<at::Tensor> ps = {at::zeros({3}).requires_grad_(true),
                                at::zeros({2}).requires_grad_(true)};
  ps[0].mutable_grad() = at::full({3}, 1.0f + comm.rank());
  if (comm.rank() == 1) ps[1].mutable_grad() = at::full({2}, 5.0f);
  GradSync sync(ps, comm, 8);
  sync.allreduce_grads();
  CHECK_OR_FAIL(at::equal(ps[0].grad(), at::full({3}, 3.0f)), ps[0].grad());
  CHECK_OR_FAIL(ps[1].grad().defined() && at::equal(ps[1].grad(), at::full({2}, 5.0f)),
                "undefined grad");
}

void check_metric_reduction(Comm& comm) {
  MetricReducer m;
  const double r = comm.rank();
  m.add_mean("kl", 2.0 * (r + 1), r + 1);  // 2 per token on every rank: mean 2
  m.add_mean("acc", r, 1);                 // ranks 0, 1: mean 0.5
  m.add_sum("tokens", 10 * (r + 1));
  m.add_max("ratio_max", 1 + r);
  m.add_min("ratio_min", 1 - r);
  const auto v = m.reduce(comm);
  CHECK_OR_FAIL(v.at("kl") == 2.0 && v.at("acc") == 0.5 && v.at("tokens") == 30 &&
                    v.at("ratio_max") == 2 && v.at("ratio_min") == 0,
                "reduced metrics wrong");
  MetricReducer bad;
  bad.add_sum("a", 1);
  if (comm.rank() == 1) bad.add_sum("extra", 1);
  bool threw = false;
  try {
    bad.reduce(comm);
  } catch (const Error&) {
    threw = true;
  }
  CHECK_OR_FAIL(threw, "mismatched metric names were not detected on rank ", comm.rank());
}

}  // namespace
}  // namespace zerorl

int main(int argc, char** argv) {
  using namespace zerorl;
  std::string write_path, compare_path;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--write-ref=", 0) == 0)
      write_path = a.substr(12);
    else if (a.rfind("--compare-ref=", 0) == 0)
      compare_path = a.substr(14);
  }
  try {
    mpi_init_if_launched(&argc, &argv);
    auto comm = make_comm(mpi_active() ? "mpi" : "single");
    g_rank = comm->rank();
    if (!write_path.empty()) {
      ZR_CHECK(comm->size() == 1, "--write-ref runs with one rank");
      write_ref(train_all(*comm), write_path);
      std::cout << "wrote " << write_path << "\n";
    } else {
      ZR_CHECK(comm->size() == 2, "the comparison runs with two ranks (mpirun -np 2), got ",
               comm->size());
      check_world_size_invariance(*comm, compare_path);
      check_overlap_same_bits(*comm);
      check_nan_skips_on_every_rank(*comm);
      check_undefined_grad_is_zero(*comm);
      check_metric_reduction(*comm);
    }
    return test::mpi_verdict(*comm);
  } catch (const std::exception& e) {
    return test::mpi_error(e);
  }
}
