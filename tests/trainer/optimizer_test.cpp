// AdamW against torch::optim::AdamW, the schedule, clipping, the skip rule,
// bit-exact state round trip, and GradSync's bucketing on one process.
#include "trainer/optimizer.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/optim/adamw.h>

#include <cmath>
#include <random>

#include "core/comm.h"
#include "core/config.h"
#include "core/error.h"
#include "trainer/grad_sync.h"
#include "trainer/shard_plan.h"

namespace zerorl {
namespace {

at::Tensor randn(std::mt19937_64& gen, std::vector<int64_t> shape, at::ScalarType dt = at::kFloat) {
  std::normal_distribution<double> nrm(0, 1);
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<double> v(n);
  for (double& x : v) x = nrm(gen);
  return at::tensor(v, at::kDouble).view(shape).to(dt);
}

std::vector<NamedParam> make_params(uint64_t seed) {
  std::mt19937_64 gen(seed);
  return {{"w1", randn(gen, {4, 5}).requires_grad_(true), true},
          {"b1", randn(gen, {5}).requires_grad_(true), true},
          {"w2", randn(gen, {5, 3}).requires_grad_(true), true}};
}

void set_grads(const std::vector<NamedParam>& ps, std::mt19937_64& gen, double scale = 1.0) {
  for (const NamedParam& p : ps) p.param.mutable_grad() = randn(gen, p.param.sizes().vec()) * scale;
}

bool same_bits(const at::Tensor& a, const at::Tensor& b) {
  return a.sizes() == b.sizes() && a.scalar_type() == b.scalar_type() && at::equal(a, b);
}

TEST(AdamW, MatchesTorchOptimAdamWBitForBit) {
  auto mine = make_params(1);
  auto theirs = make_params(1);
  std::vector<at::Tensor> tp;
  for (auto& p : theirs) tp.push_back(p.param);
  torch::optim::AdamW ref(
      tp, torch::optim::AdamWOptions(3e-2).betas({0.9, 0.95}).eps(1e-8).weight_decay(0.1));
  AdamW adam(mine, 0.9, 0.95, 1e-8, 0.1);
  std::mt19937_64 g1(5), g2(5);
  for (int step = 0; step < 6; ++step) {
    set_grads(mine, g1);
    set_grads(theirs, g2);
    adam.step(3e-2);
    ref.step();
  }
  for (size_t i = 0; i < mine.size(); ++i) {
    EXPECT_TRUE(same_bits(mine[i].param, theirs[i].param))
        << mine[i].name << " max diff "
        << (mine[i].param - theirs[i].param).abs().max().item<double>();
  }
  EXPECT_FALSE(same_bits(mine[0].param, make_params(1)[0].param));  // it did move
}

TEST(AdamW, ParametersWithoutDecayAreNotDecayed) {
  auto ps = make_params(2);
  ps[1].decay = false;
  const at::Tensor b1_before = ps[1].param.detach().clone();
  AdamW adam(ps, 0.9, 0.999, 1e-8, 0.5);
  for (auto& p : ps) p.param.mutable_grad() = at::zeros_like(p.param);
  adam.step(0.1);
  EXPECT_TRUE(same_bits(ps[1].param.detach(), b1_before));  // zero grad, no decay: unchanged
  EXPECT_FALSE(same_bits(ps[0].param.detach(), make_params(2)[0].param.detach()));  // decayed
}

TEST(LrSchedule, WarmupThenConstantOrCosine) {
  OptimizerConfig c;
  c.lr = 1e-3;
  c.warmup_steps = 4;
  EXPECT_DOUBLE_EQ(lr_at(c, 0), 0.25e-3);
  EXPECT_DOUBLE_EQ(lr_at(c, 3), 1e-3);
  EXPECT_DOUBLE_EQ(lr_at(c, 100), 1e-3);
  c.schedule = OptimizerConfig::Schedule::kCosine;
  c.total_steps = 14;
  c.min_lr_ratio = 0.1;
  EXPECT_DOUBLE_EQ(lr_at(c, 4), 1e-3);
  EXPECT_NEAR(lr_at(c, 9), 0.55e-3, 1e-15);  // half-way: mean of lr and floor
  EXPECT_NEAR(lr_at(c, 14), 1e-4, 1e-15);
  EXPECT_NEAR(lr_at(c, 50), 1e-4, 1e-15);
  for (int64_t u = 4; u < 14; ++u) EXPECT_GT(lr_at(c, u), lr_at(c, u + 1));
}

TEST(Clip, GlobalNormAndTorchClipRule) {
  auto ps = make_params(3);
  std::mt19937_64 gen(9);
  set_grads(ps, gen);
  std::vector<at::Tensor> t;
  double ss = 0;
  for (auto& p : ps) {
    t.push_back(p.param);
    ss += p.param.grad().to(at::kDouble).square().sum().item<double>();
  }
  const double norm = global_grad_norm(t);
  EXPECT_NEAR(norm, std::sqrt(ss), 1e-6 * std::sqrt(ss));
  EXPECT_EQ(clip_grads_to_norm(t, norm, 2 * norm), 1.0);  // under the cap: untouched
  const double coef = clip_grads_to_norm(t, norm, 0.5);
  EXPECT_NEAR(coef, 0.5 / (norm + 1e-6), 1e-15);
  EXPECT_NEAR(global_grad_norm(t), 0.5, 1e-5);
}

class SingleOptimizer : public ::testing::Test {
 protected:
  std::unique_ptr<Comm> comm = make_comm("single");
};

TEST_F(SingleOptimizer, NonFiniteLossOrGradientSkipsAndKeepsWeights) {
  auto ps = make_params(4);
  OptimizerConfig c;
  c.lr = 1e-2;
  c.warmup_steps = 3;
  Optimizer opt(ps, c, *comm);
  std::mt19937_64 gen(1);
  std::vector<at::Tensor> before;
  for (auto& p : ps) before.push_back(p.param.detach().clone());

  set_grads(ps, gen);
  StepReport r = opt.step(/*local_loss_finite=*/false);
  EXPECT_FALSE(r.applied);
  EXPECT_EQ(r.num_skipped, 1);
  set_grads(ps, gen);
  ps[2].param.mutable_grad()[1][1] = std::numeric_limits<float>::infinity();
  r = opt.step();
  EXPECT_FALSE(r.applied);
  EXPECT_FALSE(std::isfinite(r.grad_norm));
  EXPECT_EQ(r.num_skipped, 2);
  EXPECT_EQ(r.num_updates, 0);
  for (size_t i = 0; i < ps.size(); ++i) {
    EXPECT_TRUE(same_bits(ps[i].param.detach(), before[i])) << ps[i].name;
    EXPECT_FALSE(ps[i].param.grad().defined()) << "gradients are cleared after a skip";
  }
  for (const auto& [k, v] : opt.state()) {
    if (k.rfind("exp_avg", 0) == 0) {
      EXPECT_EQ(v.abs().sum().item<double>(), 0.0) << k;
    }
  }
  set_grads(ps, gen);
  r = opt.step();
  EXPECT_TRUE(r.applied);
  EXPECT_DOUBLE_EQ(r.lr, lr_at(c, 0));  // skipped steps do not advance the schedule
  EXPECT_EQ(r.num_updates, 1);
  EXPECT_EQ(r.num_skipped, 2);
}

// Issue 21 item 6: an update that would blow the weights up is skipped as a
// non-finite loss is, before anything is changed.
TEST_F(SingleOptimizer, AnUpdateThatWouldBlowTheWeightsUpIsSkipped) {
  auto ps = make_params(4);
  OptimizerConfig c;
  c.lr = 1e20;  // finite weights of ~1e20 after one step
  Optimizer opt(ps, c, *comm);
  std::mt19937_64 gen(2);
  std::vector<at::Tensor> before;
  for (auto& p : ps) before.push_back(p.param.detach().clone());
  set_grads(ps, gen);
  StepReport r = opt.step();
  EXPECT_FALSE(r.applied);
  EXPECT_TRUE(r.blowup);
  EXPECT_GT(r.update_ratio, 1e15);
  EXPECT_EQ(r.num_skipped, 1);
  EXPECT_EQ(r.num_updates, 0);
  for (size_t i = 0; i < ps.size(); ++i) {
    EXPECT_TRUE(same_bits(ps[i].param.detach(), before[i])) << ps[i].name;
    EXPECT_FALSE(ps[i].param.grad().defined()) << "gradients are cleared after a skip";
  }
  for (const auto& [k, v] : opt.state())
    if (k.rfind("exp_avg", 0) == 0) EXPECT_EQ(v.abs().sum().item<double>(), 0.0) << k;

  // A healthy rate: applied, the ratio small and reported.
  OptimizerConfig ok = c;
  ok.lr = 1e-3;
  auto ps2 = make_params(5);
  Optimizer opt2(ps2, ok, *comm);
  std::mt19937_64 gen2(3);
  set_grads(ps2, gen2);
  r = opt2.step();
  EXPECT_TRUE(r.applied);
  EXPECT_FALSE(r.blowup);
  EXPECT_GT(r.update_ratio, 0);
  EXPECT_LT(r.update_ratio, 0.1);
  // The bound is the recipe's: the same step under a tighter bound is skipped.
  OptimizerConfig tight = ok;
  tight.max_update_ratio = r.update_ratio / 10;
  auto ps3 = make_params(5);
  Optimizer opt3(ps3, tight, *comm);
  std::mt19937_64 gen3(3);
  set_grads(ps3, gen3);
  EXPECT_TRUE(opt3.step().blowup);
  // fp16 weights: an update past 65504 would round to inf.
  auto hs = make_params(6);
  for (auto& p : hs) p.param = p.param.detach().to(at::kHalf).requires_grad_(true);
  OptimizerConfig big = ok;
  big.lr = 1e5;
  big.max_update_ratio = 0;  // only the dtype's range decides
  Optimizer opt4(hs, big, *comm);
  for (auto& p : hs) p.param.mutable_grad() = at::ones_like(p.param);
  r = opt4.step();
  EXPECT_TRUE(r.blowup);
  for (auto& p : hs) EXPECT_TRUE(at::isfinite(p.param).all().item<bool>()) << p.name;
}

TEST_F(SingleOptimizer, StateRoundTripContinuesBitIdentically) {
  OptimizerConfig c;
  c.lr = 1e-2;
  c.weight_decay = 0.01;
  c.warmup_steps = 2;
  c.schedule = OptimizerConfig::Schedule::kCosine;
  c.total_steps = 6;
  c.max_grad_norm = 0.5;
  auto a = make_params(6);
  Optimizer oa(a, c, *comm);
  std::mt19937_64 ga(3);
  for (int s = 0; s < 3; ++s) {
    set_grads(a, ga);
    oa.step(s != 1);  // one skipped step inside the saved history
  }
  // Snapshot: weights + optimizer state, deep copies.
  std::vector<std::pair<std::string, at::Tensor>> saved;
  for (auto& [k, v] : oa.state()) saved.emplace_back(k, v.clone());
  auto b = make_params(6);
  for (size_t i = 0; i < a.size(); ++i) b[i].param.detach().copy_(a[i].param.detach());
  Optimizer ob(b, c, *comm);
  ob.load_state({saved});
  EXPECT_EQ(ob.num_updates(), 2);
  EXPECT_EQ(ob.num_skipped(), 1);
  std::mt19937_64 gb = ga;
  for (int s = 0; s < 3; ++s) {
    set_grads(a, ga);
    set_grads(b, gb);
    oa.step();
    ob.step();
  }
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_TRUE(same_bits(a[i].param.detach(), b[i].param.detach())) << a[i].name;

  // Bad state is rejected with the tensor's name.
  auto bad = saved;
  for (auto& [k, v] : bad)
    if (k == "exp_avg") v = at::zeros({7});
  try {
    ob.load_state({bad});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'exp_avg' is shorter"), std::string::npos) << e.what();
  }
  // State of another model (a parameter of another size) is named as such.
  auto other = make_params(6);
  other[1].param = at::zeros({6}).requires_grad_(true);
  Optimizer oc(other, c, *comm);
  try {
    oc.load_state({saved});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("other parameters"), std::string::npos) << e.what();
  }
}

// policy.dtype bf16: the Optimizer keeps fp32 masters.  One step at the
// hub recipe's lr 3e-6 must move the masters as an fp32 run from the same
// (bf16-rounded) weights moves its weights, up to fp32 rounding of the
// update and bf16 rounding of the gradient (which AdamW's first step, m /
// sqrt(v) ~ sign(g), hardly sees); and the bf16 parameters must be exactly
// the rounded masters.  Without masters almost every weight would not move
// at all: lr 3e-6 is far below a bf16 ulp of weights ~1.
TEST_F(SingleOptimizer, Bf16MastersMoveAsFp32AndParametersAreRoundedMasters) {
  OptimizerConfig c;
  c.lr = 3e-6;
  c.weight_decay = 0.01;
  c.max_grad_norm = 0;
  auto p16 = make_params(11);
  auto p32 = make_params(11);
  for (size_t i = 0; i < p16.size(); ++i) {
    p16[i].param = p16[i].param.detach().to(at::kBFloat16).requires_grad_(true);
    p32[i].param = p16[i].param.detach().to(at::kFloat).requires_grad_(true);
  }
  std::vector<at::Tensor> start;
  for (auto& p : p32) start.push_back(p.param.detach().clone());
  Optimizer o16(p16, c, *comm), o32(p32, c, *comm);
  EXPECT_EQ(o16.master_bytes(), (20 + 5 + 15) * 4);
  EXPECT_EQ(o32.master_bytes(), 0) << "fp32 parameters are their own masters";
  std::mt19937_64 g(5);
  set_grads(p32, g);
  for (size_t i = 0; i < p16.size(); ++i)
    p16[i].param.mutable_grad() = p32[i].param.grad().to(at::kBFloat16);
  ASSERT_TRUE(o16.step().applied);
  ASSERT_TRUE(o32.step().applied);
  ASSERT_EQ(o16.masters().size(), p16.size());  // one whole segment per parameter (stage 0)
  int64_t unmoved_bf16 = 0, total = 0;
  for (size_t i = 0; i < p16.size(); ++i) {
    const at::Tensor master = o16.masters()[i].view(p16[i].param.sizes());
    ASSERT_EQ(master.scalar_type(), at::kFloat);
    const at::Tensor d16 = (master - start[i]).to(at::kDouble);
    const at::Tensor d32 = (p32[i].param.detach() - start[i]).to(at::kDouble);
    // |update| ~ lr; fp32 holds a weight ~1 to ~1.2e-7, so each of the two
    // updates is exact to ~1 ulp of the weight.
    const at::Tensor tol = start[i].abs().to(at::kDouble) * 2.5e-7 + 1e-12;
    EXPECT_TRUE(((d16 - d32).abs() <= tol).all().item<bool>())
        << p16[i].name << ": max |dmaster - dfp32| " << (d16 - d32).abs().max().item<double>();
    EXPECT_GT(d16.abs().min().item<double>(), 0.5 * c.lr) << p16[i].name << " masters moved";
    EXPECT_TRUE(same_bits(p16[i].param.detach(), master.to(at::kBFloat16)))
        << p16[i].name << ": bf16 parameters must be the rounded masters";
    unmoved_bf16 += (p16[i].param.detach().to(at::kFloat) == start[i]).sum().item<int64_t>();
    total += start[i].numel();
  }
  // What masters are for: most bf16 weights did not change at all.
  EXPECT_GT(unmoved_bf16, total / 2);
}

TEST_F(SingleOptimizer, GradSyncBucketsByBytesAndDtypeAndKeepsGradients) {
  std::mt19937_64 gen(2);
  // 20 + 5 + 15 floats, then a double tensor: with 64-byte buckets,
  // w1 (80 B) alone, b1 + ... as they fit, the double one separately.
  std::vector<at::Tensor> ps = {
      randn(gen, {4, 5}).requires_grad_(true), randn(gen, {5}).requires_grad_(true),
      randn(gen, {3}).requires_grad_(true), randn(gen, {2}, at::kDouble).requires_grad_(true)};
  GradSync sync(ps, *comm, 64);
  EXPECT_EQ(sync.num_buckets(), 3);  // [w1], [b1 (20 B), c (12 B)], [double]
  EXPECT_EQ(sync.bucket_numel(0), 20);
  EXPECT_EQ(sync.bucket_numel(1), 8);
  EXPECT_EQ(sync.bucket_numel(2), 2);
  std::vector<at::Tensor> want;
  for (size_t i = 0; i < ps.size(); ++i) {
    if (i == 2) {
      want.push_back(at::zeros_like(ps[i]));  // no gradient on this rank: zeros after sync
      continue;
    }
    ps[i].mutable_grad() = randn(gen, ps[i].sizes().vec(), ps[i].scalar_type());
    want.push_back(ps[i].grad().clone());
  }
  sync.allreduce_grads();
  for (size_t i = 0; i < ps.size(); ++i) {
    ASSERT_TRUE(ps[i].grad().defined());
    EXPECT_TRUE(same_bits(ps[i].grad(), want[i])) << i;
  }
}

// The plan's slices cover every bucket exactly once over the ranks, with
// equal per-rank counts (the last slices short or empty), and copy_overlaps
// moves elements between two different cuts of the flat space.
TEST(ShardPlan, SlicesCoverEveryElementOnceAtEveryWorldSize) {
  std::mt19937_64 gen(2);
  std::vector<at::Tensor> ps = {randn(gen, {4, 5}), randn(gen, {5}), randn(gen, {3}),
                                randn(gen, {2}, at::kDouble), randn(gen, {7})};
  for (int world : {1, 2, 3, 4, 8}) {
    std::vector<int> covered(37, 0);
    for (int r = 0; r < world; ++r) {
      ShardPlan p = ShardPlan::make(ps, 1, r, world, 64);
      ASSERT_EQ(p.total_numel, 37);
      int64_t seg_total = 0;
      for (const auto& s : p.owned) {
        EXPECT_EQ(s.global, p.param_offset[s.param] + s.offset);
        EXPECT_LE(s.offset + s.numel, p.param_numel[s.param]);
        for (int64_t e = s.global; e < s.global + s.numel; ++e) ++covered[e];
        seg_total += s.numel;
      }
      int64_t range_total = 0;
      for (auto [b, e] : p.slice_ranges(r)) range_total += e - b;
      EXPECT_EQ(range_total, seg_total) << "world " << world << " rank " << r;
      for (const auto& b : p.buckets) EXPECT_EQ(b.shard, (b.numel + world - 1) / world);
    }
    for (int e = 0; e < 37; ++e) EXPECT_EQ(covered[e], 1) << "element " << e << " world " << world;
    EXPECT_EQ(ShardPlan::make(ps, 0, 0, world, 64).owned_numel(), 37) << "stage 0 owns all";
  }
  EXPECT_THROW(ShardPlan::make(ps, 3, 0, 1, 64), Error);
  // Two cuts of [0, 10): pieces [0,4) [4,10) into [0,3) [3,7) [7,10).
  at::Tensor src = at::arange(10, at::kFloat), dst = at::zeros({10});
  std::vector<FlatSpan> a = {{0, src.narrow(0, 0, 4)}, {4, src.narrow(0, 4, 6)}};
  std::vector<FlatSpan> b = {
      {0, dst.narrow(0, 0, 3)}, {3, dst.narrow(0, 3, 4)}, {7, dst.narrow(0, 7, 3)}};
  EXPECT_EQ(copy_overlaps(a, b), 10);
  EXPECT_TRUE(at::equal(src, dst));
}

TEST(MetricReducer, LocalMeansSumsAndExtremes) {
  MetricReducer m;
  m.add_mean("a", 3, 2);
  m.add_mean("a", 1, 2);
  m.add_sum("s", 1.5);
  m.add_sum("s", 2);
  m.add_max("x", 1);
  m.add_max("x", 4);
  m.add_min("n", 1);
  m.add_min("n", -2);
  m.add_mean("empty", 0, 0);
  const auto v = m.reduce(*make_comm("single"));
  EXPECT_DOUBLE_EQ(v.at("a"), 1.0);
  EXPECT_DOUBLE_EQ(v.at("s"), 3.5);
  EXPECT_DOUBLE_EQ(v.at("x"), 4);
  EXPECT_DOUBLE_EQ(v.at("n"), -2);
  EXPECT_TRUE(std::isnan(v.at("empty")));
}

// optimizer.total_steps counts updates; the cosine schedule's default is the
// caller's count of the run's updates, written into the resolved recipe.
TEST(OptimizerConfig, CosineTotalStepsDefaultsToTheRunsUpdates) {
  Recipe r = Recipe::from_string("opt:\n  schedule: cosine\n  warmup_steps: 5\n", "o.yaml");
  const OptimizerConfig c = OptimizerConfig::from(r.section("opt"), 240);
  EXPECT_EQ(c.total_steps, 240);
  EXPECT_NE(r.dump().find("total_steps: 240"), std::string::npos) << r.dump();
  Recipe given = Recipe::from_string("opt:\n  schedule: cosine\n  total_steps: 90\n", "o.yaml");
  EXPECT_EQ(OptimizerConfig::from(given.section("opt"), 240).total_steps, 90);
  Recipe constant = Recipe::from_string("opt:\n  lr: 1.0e-3\n", "o.yaml");
  EXPECT_EQ(OptimizerConfig::from(constant.section("opt"), 240).total_steps, 0);
  Recipe none = Recipe::from_string("opt:\n  schedule: cosine\n", "o.yaml");
  EXPECT_THROW(OptimizerConfig::from(none.section("opt")), Error);
}

TEST(OptimizerConfig, FromRecipeWithValidation) {
  Recipe r = Recipe::from_string(
      "opt:\n  lr: 3e-6\n  beta2: 0.95\n  weight_decay: 0.1\n  warmup_steps: 10\n  schedule: "
      "cosine\n"
      "  total_steps: 400\n  min_lr_ratio: 0.1\n  max_grad_norm: 1.0\n  bucket_mb: 50\n  "
      "grad_reduce: mean\n",
      "o.yaml");
  const OptimizerConfig c = OptimizerConfig::from(r.section("opt"));
  EXPECT_DOUBLE_EQ(c.lr, 3e-6);
  EXPECT_DOUBLE_EQ(c.beta2, 0.95);
  EXPECT_EQ(c.schedule, OptimizerConfig::Schedule::kCosine);
  EXPECT_EQ(c.total_steps, 400);
  EXPECT_EQ(c.grad_reduce, ReduceOp::kMean);
  EXPECT_NO_THROW(r.check_all_read());
  auto error_of = [](const std::string& yaml) -> std::string {
    Recipe bad = Recipe::from_string(yaml, "bad.yaml");
    try {
      OptimizerConfig::from(bad.section("opt"));
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  std::string e = error_of("opt:\n  lr: 0\n");
  EXPECT_NE(e.find("bad.yaml:2"), std::string::npos) << e;
  EXPECT_NE(e.find("opt.lr"), std::string::npos) << e;
  e = error_of("opt:\n  schedule: cosine\n  warmup_steps: 5\n");
  EXPECT_NE(e.find("total_steps"), std::string::npos) << e;
  e = error_of("opt:\n  beta1: 1.0\n");
  EXPECT_NE(e.find("opt.beta1"), std::string::npos) << e;
  // Beyond fp32 (the masters' dtype): refused at load, naming key and line.
  e = error_of("opt:\n  beta1: 0.9\n  lr: 1.0e38\n");
  EXPECT_NE(e.find("bad.yaml:3:3: opt.lr = 1e+38 is beyond the fp32 range"), std::string::npos)
      << e;
  EXPECT_EQ(error_of("opt:\n  lr: 3.0e37\n"), "");  // lr / (1 - beta1) = 3e38 still fits
  e = error_of("opt:\n  eps: 1.0e39\n");
  EXPECT_NE(e.find("bad.yaml:2:3: opt.eps = 1e+39 is beyond the fp32 range"), std::string::npos)
      << e;
  e = error_of("opt:\n  max_update_ratio: -1\n");
  EXPECT_NE(e.find("opt.max_update_ratio must be >= 0"), std::string::npos) << e;
}

}  // namespace
}  // namespace zerorl
