// grpo_loss against an independent reference: plain per-token loops in double
// precision with hand-derived gradients (no tensor code), on random inputs
// with ragged lengths, holes in the mask, empty rows and NaN padding.
#include "trainer/grpo_loss.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "core/config.h"
#include "core/error.h"
#include "trainer/grad_sync.h"

namespace zerorl {
namespace {

using Agg = LossConfig::Aggregation;
using Est = LossConfig::KlEstimator;

// ---- random ragged batch, as plain vectors ----------------------------------------

struct Batch {
  int64_t B = 0, T = 0;
  std::vector<double> logp, old_logp, ref_logp, entropy, adv;  // [B*T] / [B]
  std::vector<uint8_t> mask;                                   // [B*T]
};

Batch random_batch(uint64_t seed, int64_t B, int64_t T) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> nrm(0.0, 1.0);
  std::uniform_real_distribution<double> uni(0.0, 1.0);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Batch b;
  b.B = B;
  b.T = T;
  b.logp.resize(B * T);
  b.old_logp.resize(B * T);
  b.ref_logp.resize(B * T);
  b.entropy.resize(B * T);
  b.mask.resize(B * T);
  b.adv.resize(B);
  for (int64_t i = 0; i < B; ++i) {
    // Row 1 is empty, row 2 full; the rest ragged, with a hole or two.
    int64_t len = i == 1 ? 0 : i == 2 ? T : 1 + static_cast<int64_t>(uni(gen) * (T - 1));
    b.adv[i] = i == 3 ? 0.0 : nrm(gen);
    for (int64_t t = 0; t < T; ++t) {
      const bool on = t < len && !(t > 0 && uni(gen) < 0.15);
      const int64_t k = i * T + t;
      b.mask[k] = on;
      if (on) {
        b.logp[k] = -0.05 - 3.0 * uni(gen);
        b.old_logp[k] = b.logp[k] + 0.3 * nrm(gen);  // ratios on both sides of the clip
        b.ref_logp[k] = b.logp[k] + 0.5 * nrm(gen);
        b.entropy[k] = 0.1 + 2.0 * uni(gen);
      } else {
        b.logp[k] = nan;  // padding may hold anything
        b.old_logp[k] = nan;
        b.ref_logp[k] = std::numeric_limits<double>::infinity();
        b.entropy[k] = nan;
      }
    }
  }
  return b;
}

// ---- the reference: per-token loops, hand-derived gradient ---------------------------

struct Ref {
  double loss = 0;
  std::vector<double> dlogp, dentropy;
  double num_tokens = 0, kl_sum = 0, clip_low = 0, clip_high = 0, ratio_sum = 0;
  double ratio_min = std::numeric_limits<double>::infinity();
  double ratio_max = -std::numeric_limits<double>::infinity();
};

Ref reference(const Batch& b, const LossConfig& c, bool with_ref, bool with_entropy,
              double num_seqs, double num_tokens) {
  Ref r;
  r.dlogp.assign(b.B * b.T, 0.0);
  r.dentropy.assign(b.B * b.T, 0.0);
  const bool kl_in_loss = c.beta > 0 && c.kl_in == LossConfig::KlIn::kLoss;
  for (int64_t i = 0; i < b.B; ++i) {
    int64_t n_i = 0;
    for (int64_t t = 0; t < b.T; ++t) n_i += b.mask[i * b.T + t];
    for (int64_t t = 0; t < b.T; ++t) {
      const int64_t k = i * b.T + t;
      if (!b.mask[k]) continue;
      const double A = b.adv[i];
      const double ratio = std::exp(b.logp[k] - b.old_logp[k]);
      const double lo = 1.0 - c.eps_low, hi = 1.0 + c.eps_high;
      const double rc = ratio < lo ? lo : ratio > hi ? hi : ratio;
      const double unclipped = ratio * A, clipped = rc * A;
      // pg = -min(unclipped, clipped).  When the clipped term is strictly the
      // smaller one the clamp is active, so it does not depend on logp.
      double per = -(unclipped <= clipped ? unclipped : clipped);
      double dper = unclipped <= clipped ? -A * ratio : 0.0;
      double kl = 0, dkl = 0;
      if (with_ref) {
        const double x = b.ref_logp[k] - b.logp[k];
        switch (c.kl_estimator) {
          case Est::kK1:
            kl = -x;
            dkl = 1.0;
            break;
          case Est::kK2:
            kl = 0.5 * x * x;
            dkl = -x;
            break;
          case Est::kK3:
            kl = std::exp(x) - x - 1.0;
            dkl = 1.0 - std::exp(x);
            break;
        }
        r.kl_sum += kl;
      }
      if (kl_in_loss) {
        per += c.beta * kl;
        dper += c.beta * dkl;
      }
      double w = 0;
      switch (c.aggregation) {
        case Agg::kGrpo:
          w = 1.0 / (static_cast<double>(n_i) * num_seqs);
          break;
        case Agg::kDapo:
          w = 1.0 / num_tokens;
          break;
        case Agg::kDrGrpo:
          w = 1.0 / (num_seqs * static_cast<double>(c.max_completion_length));
          break;
      }
      r.loss += w * per;
      r.dlogp[k] = w * dper;
      if (with_entropy && c.entropy_coef != 0) {
        r.loss -= c.entropy_coef * b.entropy[k] / num_tokens;
        r.dentropy[k] = -c.entropy_coef / num_tokens;
      }
      r.num_tokens += 1;
      r.clip_low += (A < 0 && ratio < lo);
      r.clip_high += (A > 0 && ratio > hi);
      r.ratio_sum += ratio;
      r.ratio_min = std::min(r.ratio_min, ratio);
      r.ratio_max = std::max(r.ratio_max, ratio);
    }
  }
  return r;
}

// ---- the implementation under test ------------------------------------------------------

at::Tensor bt(const std::vector<double>& v, int64_t B, int64_t T, at::ScalarType dt) {
  return at::tensor(v, at::kDouble).view({B, T}).to(dt);
}

struct ImplRun {
  LossOutput out;
  at::Tensor dlogp, dentropy;
};

ImplRun run_impl(const Batch& b, const LossConfig& c, bool with_ref, bool with_entropy,
                 at::ScalarType dt, const LossScale& scale = {}, bool float_mask = false) {
  LossInputs in;
  in.logp_BT = bt(b.logp, b.B, b.T, dt).requires_grad_(true);
  in.old_logp_BT = bt(b.old_logp, b.B, b.T, dt);
  if (with_ref) in.ref_logp_BT = bt(b.ref_logp, b.B, b.T, dt);
  if (with_entropy) in.entropy_BT = bt(b.entropy, b.B, b.T, dt).requires_grad_(true);
  in.advantages_B = at::tensor(b.adv, at::kDouble).to(dt);
  std::vector<int64_t> m(b.mask.begin(), b.mask.end());
  in.mask_BT = at::tensor(m, at::kLong).view({b.B, b.T}) != 0;
  if (float_mask) in.mask_BT = in.mask_BT.to(at::kFloat);
  ImplRun r;
  r.out = grpo_loss(in, c, scale);
  r.out.loss.backward();
  r.dlogp = in.logp_BT.grad().to(at::kDouble);
  if (with_entropy) {
    const at::Tensor g = in.entropy_BT.grad();
    r.dentropy = g.defined() ? g.to(at::kDouble) : at::zeros({b.B, b.T}, at::kDouble);
  }
  return r;
}

struct Variant {
  Agg agg;
  double eps_low, eps_high, beta;
  Est est;
  double entropy_coef;
  bool with_ref;
};

std::string name_of(const Variant& v) {
  return str_cat(to_string(v.agg), " eps=(", v.eps_low, ",", v.eps_high, ") beta=", v.beta,
                 " est=k", static_cast<int>(v.est) + 1, " ent=", v.entropy_coef,
                 " ref=", v.with_ref);
}

std::vector<Variant> all_variants() {
  std::vector<Variant> vs;
  for (Agg agg : {Agg::kGrpo, Agg::kDapo, Agg::kDrGrpo}) {
    vs.push_back({agg, 0.2, 0.2, 0.0, Est::kK3, 0.0, false});  // no reference model
    vs.push_back({agg, 0.2, 0.28, 0.0, Est::kK3, 0.0, true});  // KL metric only
    vs.push_back({agg, 0.2, 0.28, 0.04, Est::kK1, 0.0, true});
    vs.push_back({agg, 0.1, 0.3, 0.04, Est::kK2, 0.0, true});
    vs.push_back({agg, 0.2, 0.2, 0.04, Est::kK3, 0.01, true});    // KL + entropy bonus
    vs.push_back({agg, 0.2, 0.28, 0.0, Est::kK3, 0.005, false});  // entropy bonus only
  }
  return vs;
}

LossConfig config_of(const Variant& v) {
  LossConfig c;
  c.aggregation = v.agg;
  c.eps_low = v.eps_low;
  c.eps_high = v.eps_high;
  c.beta = v.beta;
  c.kl_estimator = v.est;
  c.entropy_coef = v.entropy_coef;
  c.max_completion_length = 16;
  return c;
}

void expect_close(double got, double want, double rel, double abs_tol, const std::string& what) {
  EXPECT_NEAR(got, want, abs_tol + rel * std::fabs(want)) << what;
}

// Every variant, in double: the implementation equals the per-token loop to
// rounding (1e-12 relative: both are O(BT) sums of O(1) terms in fp64).
TEST(GrpoLoss, EveryVariantMatchesPerTokenReferenceInDouble) {
  const Batch b = random_batch(7, 9, 13);
  for (const Variant& v : all_variants()) {
    SCOPED_TRACE(name_of(v));
    const LossConfig c = config_of(v);
    const bool with_entropy = v.entropy_coef != 0;
    const LossScale local = LossScale::of(
        at::tensor(std::vector<int64_t>(b.mask.begin(), b.mask.end())).view({b.B, b.T}));
    const Ref ref = reference(b, c, v.with_ref, with_entropy, local.num_seqs, local.num_tokens);
    const ImplRun got = run_impl(b, c, v.with_ref, with_entropy, at::kDouble);
    expect_close(got.out.loss.item<double>(), ref.loss, 1e-12, 1e-15, "loss");
    const at::Tensor dl = got.dlogp.contiguous();
    ASSERT_TRUE(at::isfinite(dl).all().item<bool>()) << "NaN padding leaked into the gradient";
    for (int64_t k = 0; k < b.B * b.T; ++k) {
      expect_close(dl.data_ptr<double>()[k], ref.dlogp[k], 1e-12, 1e-15, str_cat("dlogp[", k, "]"));
    }
    if (with_entropy) {
      const at::Tensor de = got.dentropy.contiguous();
      for (int64_t k = 0; k < b.B * b.T; ++k)
        expect_close(de.data_ptr<double>()[k], ref.dentropy[k], 1e-12, 1e-15,
                     str_cat("dH[", k, "]"));
    }
    const LossStats& s = got.out.stats;
    EXPECT_EQ(s.num_tokens, ref.num_tokens);
    EXPECT_EQ(s.num_seqs, b.B);
    EXPECT_EQ(s.clip_low_count, ref.clip_low);
    EXPECT_EQ(s.clip_high_count, ref.clip_high);
    expect_close(s.ratio_sum, ref.ratio_sum, 1e-12, 0, "ratio_sum");
    expect_close(s.ratio_min, ref.ratio_min, 1e-12, 0, "ratio_min");
    expect_close(s.ratio_max, ref.ratio_max, 1e-12, 0, "ratio_max");
    EXPECT_EQ(s.has_kl, v.with_ref);
    if (v.with_ref) expect_close(s.kl_sum, ref.kl_sum, 1e-12, 1e-15, "kl_sum");
    expect_close(s.loss, ref.loss, 1e-12, 1e-15, "stats.loss");
  }
}

// The data are such that every clip branch is exercised (otherwise the
// comparison above could pass with a wrong clip rule).
TEST(GrpoLoss, RandomBatchExercisesBothClipSides) {
  const Batch b = random_batch(7, 9, 13);
  const Ref ref = reference(b, config_of(all_variants()[1]), true, false, b.B, 1);
  EXPECT_GE(ref.clip_low, 2);
  EXPECT_GE(ref.clip_high, 2);
  int zero_grad_tokens = 0;
  for (int64_t k = 0; k < b.B * b.T; ++k) zero_grad_tokens += b.mask[k] && ref.dlogp[k] == 0.0;
  EXPECT_GE(zero_grad_tokens, 4);  // clipped tokens (and A = 0 row) carry no gradient
}

// In float32, as training runs: within 2e-5 relative of the fp64 reference
// (fp32 epsilon 1.2e-7 times exp/log and ~100-term sums, with headroom).
TEST(GrpoLoss, Float32AgreesWithReferenceWithinFloatTolerance) {
  const Batch b = random_batch(11, 6, 20);
  for (const Variant& v : all_variants()) {
    SCOPED_TRACE(name_of(v));
    const LossConfig c = config_of(v);
    const bool with_entropy = v.entropy_coef != 0;
    double ntok = 0;
    for (uint8_t m : b.mask) ntok += m;
    const Ref ref = reference(b, c, v.with_ref, with_entropy, b.B, ntok);
    const ImplRun got =
        run_impl(b, c, v.with_ref, with_entropy, at::kFloat, {}, /*float_mask=*/true);
    EXPECT_EQ(got.out.loss.scalar_type(), at::kFloat);
    expect_close(got.out.loss.item<double>(), ref.loss, 2e-5, 1e-7, "loss");
    const at::Tensor dl = got.dlogp.contiguous();
    double max_ref = 0;
    for (double g : ref.dlogp) max_ref = std::max(max_ref, std::fabs(g));
    for (int64_t k = 0; k < b.B * b.T; ++k)
      expect_close(dl.data_ptr<double>()[k], ref.dlogp[k], 2e-5, 1e-6 * max_ref,
                   str_cat("dlogp[", k, "]"));
  }
}

// Splitting a batch into micro-batches with the step's LossScale gives the
// same total loss and gradient as one call on the whole batch: this is what
// makes gradient accumulation and data parallelism exact.
TEST(GrpoLoss, MicroBatchesWithStepScaleSumToWholeBatch) {
  const Batch b = random_batch(3, 8, 10);
  for (const Variant& v : all_variants()) {
    SCOPED_TRACE(name_of(v));
    const LossConfig c = config_of(v);
    const bool with_entropy = v.entropy_coef != 0;
    const ImplRun whole = run_impl(b, c, v.with_ref, with_entropy, at::kDouble);
    // Rows [0,3) and [3,8) as two micro-batches.
    auto slice = [&](int64_t r0, int64_t r1) {
      Batch s;
      s.B = r1 - r0;
      s.T = b.T;
      auto cut = [&](const auto& src) {
        return std::vector<typename std::decay_t<decltype(src)>::value_type>(
            src.begin() + r0 * b.T, src.begin() + r1 * b.T);
      };
      s.logp = cut(b.logp);
      s.old_logp = cut(b.old_logp);
      s.ref_logp = cut(b.ref_logp);
      s.entropy = cut(b.entropy);
      s.mask = cut(b.mask);
      s.adv.assign(b.adv.begin() + r0, b.adv.begin() + r1);
      return s;
    };
    const Batch p0 = slice(0, 3), p1 = slice(3, 8);
    auto mask_of = [](const Batch& x) {
      return at::tensor(std::vector<int64_t>(x.mask.begin(), x.mask.end())).view({x.B, x.T});
    };
    LossScale step = LossScale::of(mask_of(p0));
    step += LossScale::of(mask_of(p1));
    const ImplRun r0 = run_impl(p0, c, v.with_ref, with_entropy, at::kDouble, step);
    const ImplRun r1 = run_impl(p1, c, v.with_ref, with_entropy, at::kDouble, step);
    expect_close(r0.out.loss.item<double>() + r1.out.loss.item<double>(),
                 whole.out.loss.item<double>(), 1e-12, 1e-15, "loss");
    const at::Tensor g = at::cat({r0.dlogp, r1.dlogp}, 0);
    EXPECT_TRUE(at::allclose(g, whole.dlogp, 1e-12, 1e-15));
  }
}

TEST(GrpoLoss, OnPolicyGrpoGradientIsMinusAdvantageOverLength) {
  // ratio = 1, no KL: d loss / d logp_bt = -A_b / (n_b * B): the policy
  // gradient of DeepSeekMath eq. 3 at the first inner step.
  at::Tensor logp = at::full({2, 3}, -1.0, at::kDouble).requires_grad_(true);
  LossInputs in;
  in.logp_BT = logp;
  in.old_logp_BT = logp.detach().clone();
  in.advantages_B = at::tensor({1.5, -0.5}, at::kDouble);
  in.mask_BT = at::tensor({1, 1, 1, 1, 0, 0}, at::kLong).view({2, 3}) != 0;
  LossOutput out = grpo_loss(in, LossConfig{});
  out.loss.backward();
  const at::Tensor want =
      at::tensor({-1.5 / 6, -1.5 / 6, -1.5 / 6, 0.5 / 2, 0.0, 0.0}, at::kDouble).view({2, 3});
  EXPECT_TRUE(at::allclose(logp.grad(), want, 1e-15, 1e-15)) << logp.grad();
  EXPECT_NEAR(out.loss.item<double>(), -(1.5 - 0.5) / 2, 1e-15);
}

TEST(GrpoLoss, Bfloat16InputsAreComputedInFloat32) {
  const Batch b = random_batch(13, 5, 8);
  const LossConfig c = config_of(all_variants()[4]);  // grpo, k3 KL, entropy bonus
  // The reference on the bf16-rounded inputs: the only error left is fp32's.
  Batch rb = b;
  for (auto* v : {&rb.logp, &rb.old_logp, &rb.ref_logp, &rb.entropy}) {
    const at::Tensor t = at::tensor(*v, at::kDouble).to(at::kBFloat16).to(at::kDouble).contiguous();
    v->assign(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
  }
  rb.adv.clear();
  const at::Tensor a =
      at::tensor(b.adv, at::kDouble).to(at::kBFloat16).to(at::kDouble).contiguous();
  rb.adv.assign(a.data_ptr<double>(), a.data_ptr<double>() + a.numel());
  double ntok = 0;
  for (uint8_t m : b.mask) ntok += m;
  const Ref ref = reference(rb, c, true, true, b.B, ntok);
  const ImplRun got = run_impl(b, c, true, true, at::kBFloat16);
  EXPECT_EQ(got.out.loss.scalar_type(), at::kFloat);
  EXPECT_NEAR(got.out.loss.item<double>(), ref.loss, 2e-5 * std::fabs(ref.loss) + 1e-7);
}

TEST(GrpoLoss, MissingOrMisshapedTensorsAreNamed) {
  LossInputs in;
  in.logp_BT = at::zeros({2, 3}, at::kDouble);
  in.old_logp_BT = at::zeros({2, 3}, at::kDouble);
  in.advantages_B = at::zeros({2}, at::kDouble);
  in.mask_BT = at::ones({2, 4}, at::kBool);
  try {
    grpo_loss(in, LossConfig{});
    FAIL() << "mis-shaped mask accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("mask_BT"), std::string::npos) << e.what();
  }
  in.mask_BT = at::ones({2, 3}, at::kBool);
  LossConfig c;
  c.beta = 0.1;
  try {
    grpo_loss(in, c);
    FAIL() << "beta > 0 without reference accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ref_logp_BT"), std::string::npos) << e.what();
  }
  in.advantages_B = at::zeros({3}, at::kDouble);
  EXPECT_THROW(grpo_loss(in, LossConfig{}), Error);
}

// ---- reward-side helpers --------------------------------------------------------------

TEST(KlRewardPenalty, IsBetaTimesPerSequenceKlSum) {
  const Batch b = random_batch(5, 5, 7);
  for (Est est : {Est::kK1, Est::kK2, Est::kK3}) {
    LossConfig c;
    c.beta = 0.05;
    c.kl_in = LossConfig::KlIn::kReward;
    c.kl_estimator = est;
    std::vector<int64_t> m(b.mask.begin(), b.mask.end());
    const std::vector<double> pen =
        kl_reward_penalty(bt(b.old_logp, b.B, b.T, at::kDouble),
                          bt(b.ref_logp, b.B, b.T, at::kDouble), at::tensor(m).view({b.B, b.T}), c);
    ASSERT_EQ(pen.size(), static_cast<size_t>(b.B));
    for (int64_t i = 0; i < b.B; ++i) {
      double want = 0;
      for (int64_t t = 0; t < b.T; ++t) {
        const int64_t k = i * b.T + t;
        if (!b.mask[k]) continue;
        const double x = b.ref_logp[k] - b.old_logp[k];
        want += est == Est::kK1 ? -x : est == Est::kK2 ? 0.5 * x * x : std::exp(x) - x - 1;
      }
      EXPECT_NEAR(pen[i], c.beta * want, 1e-12) << "row " << i;
    }
  }
}

TEST(Overlong, SoftPenaltyFollowsDapoEquation13) {
  // L_max = 20, L_cache = 4: free up to 16, linear to -1 at 20, -1 beyond.
  EXPECT_EQ(overlong_soft_penalty(0, 20, 4, 1.0), 0.0);
  EXPECT_EQ(overlong_soft_penalty(16, 20, 4, 1.0), 0.0);
  EXPECT_DOUBLE_EQ(overlong_soft_penalty(17, 20, 4, 1.0), -0.25);
  EXPECT_DOUBLE_EQ(overlong_soft_penalty(18, 20, 4, 1.0), -0.5);
  EXPECT_DOUBLE_EQ(overlong_soft_penalty(20, 20, 4, 1.0), -1.0);
  EXPECT_DOUBLE_EQ(overlong_soft_penalty(25, 20, 4, 1.0), -1.0);
  EXPECT_DOUBLE_EQ(overlong_soft_penalty(18, 20, 4, 0.5), -0.25);
  EXPECT_THROW(overlong_soft_penalty(5, 20, 0, 1.0), Error);

  LossConfig c;
  c.overlong = LossConfig::Overlong::kSoft;
  c.max_completion_length = 20;
  c.overlong_buffer = 4;
  std::vector<double> rewards = {1.0, 1.0, 0.0};
  apply_overlong_shaping(rewards, {10, 18, 20}, c);
  EXPECT_DOUBLE_EQ(rewards[0], 1.0);
  EXPECT_DOUBLE_EQ(rewards[1], 0.5);
  EXPECT_DOUBLE_EQ(rewards[2], -1.0);
  c.overlong = LossConfig::Overlong::kMask;  // mask mode leaves rewards alone
  apply_overlong_shaping(rewards, {20, 20, 20}, c);
  EXPECT_DOUBLE_EQ(rewards[1], 0.5);
}

TEST(Overlong, MaskTruncatedRemovesTruncatedRowsFromTheLoss) {
  const at::Tensor mask = at::ones({3, 4}, at::kBool);
  const at::Tensor trunc = at::tensor({0, 1, 0}, at::kLong) != 0;
  const at::Tensor m = mask_truncated(mask, trunc);
  EXPECT_EQ(m.sum().item<int64_t>(), 8);
  EXPECT_FALSE(m[1].any().item<bool>());
  EXPECT_EQ(mask_truncated(mask.to(at::kFloat), trunc).sum().item<double>(), 8.0);
  // A truncated completion with a large advantage no longer moves the policy.
  at::Tensor logp = at::full({3, 4}, -1.0, at::kDouble).requires_grad_(true);
  LossInputs in{logp, logp.detach().clone(), {}, at::tensor({0.0, 5.0, 0.0}, at::kDouble), m, {}};
  grpo_loss(in, LossConfig{}).loss.backward();
  EXPECT_EQ(logp.grad().abs().sum().item<double>(), 0.0);
}

// ---- config ---------------------------------------------------------------------------

TEST(LossConfig, ReadsRecipeAndRejectsBadValuesWithPosition) {
  Recipe r = Recipe::from_string(
      "loss:\n  aggregation: dapo\n  eps_low: 0.2\n  eps_high: 0.28\n  beta: 0.001\n"
      "  kl_estimator: k2\n  overlong: soft\n  max_completion_length: 512\n  overlong_buffer: 64\n",
      "r.yaml");
  const LossConfig c = LossConfig::from(r.section("loss"));
  EXPECT_EQ(c.aggregation, Agg::kDapo);
  EXPECT_DOUBLE_EQ(c.eps_high, 0.28);
  EXPECT_EQ(c.kl_estimator, Est::kK2);
  EXPECT_TRUE(c.needs_reference());
  EXPECT_EQ(c.overlong_buffer, 64);
  EXPECT_NO_THROW(r.check_all_read());

  auto error_of = [](const std::string& yaml) -> std::string {
    Recipe bad = Recipe::from_string(yaml, "bad.yaml");
    try {
      LossConfig::from(bad.section("loss"));
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  std::string e = error_of("loss:\n  eps_low: 1.5\n");
  EXPECT_NE(e.find("bad.yaml:2"), std::string::npos) << e;
  EXPECT_NE(e.find("loss.eps_low"), std::string::npos) << e;
  e = error_of("loss:\n  aggregation: dr_grpo\n");
  EXPECT_NE(e.find("max_completion_length"), std::string::npos) << e;
  e = error_of("loss:\n  aggregation: token_mean\n");
  EXPECT_NE(e.find("aggregation"), std::string::npos) << e;
  e = error_of("loss:\n  overlong: soft\n  max_completion_length: 100\n  overlong_buffer: 200\n");
  EXPECT_NE(e.find("overlong_buffer"), std::string::npos) << e;
  e = error_of("loss:\n  beta: -0.1\n");
  EXPECT_NE(e.find("loss.beta"), std::string::npos) << e;
}

TEST(LossStats, AddToGivesTokenMeansAndExtremes) {
  const Batch b = random_batch(9, 4, 6);
  LossConfig c;
  c.beta = 0.04;
  const ImplRun got = run_impl(b, c, true, true, at::kDouble);
  MetricReducer m;
  got.out.stats.add_to(m);
  got.out.stats.add_to(m);  // two identical micro-batches: means unchanged, sums doubled
  const auto v = m.local();
  const Ref ref = reference(b, c, true, true, b.B, got.out.stats.num_tokens);
  EXPECT_NEAR(v.at("loss/kl"), ref.kl_sum / ref.num_tokens, 1e-12);
  EXPECT_NEAR(v.at("loss/ratio_mean"), ref.ratio_sum / ref.num_tokens, 1e-12);
  EXPECT_NEAR(v.at("loss/clip_frac_low"), ref.clip_low / ref.num_tokens, 1e-15);
  EXPECT_NEAR(v.at("loss/clip_frac_high"), ref.clip_high / ref.num_tokens, 1e-15);
  EXPECT_EQ(v.at("loss/num_tokens"), 2 * ref.num_tokens);
  EXPECT_NEAR(v.at("loss/ratio_max"), ref.ratio_max, 1e-12);
  EXPECT_NEAR(v.at("loss/ratio_min"), ref.ratio_min, 1e-12);
  EXPECT_NEAR(v.at("loss/loss"), 2 * ref.loss, 1e-12);
  EXPECT_TRUE(v.count("loss/entropy"));
}

}  // namespace
}  // namespace zerorl
