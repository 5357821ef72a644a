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
using RL = LossConfig::RatioLevel;
using BIS = LossConfig::BehaviourIs;

// ---- random ragged batch, as plain vectors ----------------------------------------

struct Batch {
  int64_t B = 0, T = 0;
  std::vector<double> logp, old_logp, ref_logp, entropy, adv;  // [B*T] / [B]
  std::vector<double> beh_logp;                                // [B*T] behaviour policy
  std::vector<uint8_t> mask;                                   // [B*T]
};

// lengths: each row's completion length (holes are then cut into it);
// empty: row 1 empty, row 2 full, the rest random.
Batch random_batch(uint64_t seed, int64_t B, int64_t T, std::vector<int64_t> lengths = {}) {
  std::mt19937_64 gen(seed);
  std::mt19937_64 beh_gen(seed + 1000);  // a stream of its own: the other values stay put
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
  b.beh_logp.resize(B * T);
  b.mask.resize(B * T);
  b.adv.resize(B);
  for (int64_t i = 0; i < B; ++i) {
    // Row 1 is empty, row 2 full; the rest ragged, with a hole or two.
    int64_t len = i == 1 ? 0 : i == 2 ? T : 1 + static_cast<int64_t>(uni(gen) * (T - 1));
    if (!lengths.empty()) len = lengths[i];
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
        b.beh_logp[k] = b.old_logp[k] + 0.15 * nrm(beh_gen);  // rollout vs learner numerics
      } else {
        b.logp[k] = nan;  // padding may hold anything
        b.old_logp[k] = nan;
        b.ref_logp[k] = std::numeric_limits<double>::infinity();
        b.entropy[k] = nan;
        b.beh_logp[k] = nan;
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
  double active_seqs = 0, seq_ratio_sum = 0, seq_clip_low = 0, seq_clip_high = 0;
  double seq_ratio_min = std::numeric_limits<double>::infinity();
  double seq_ratio_max = -std::numeric_limits<double>::infinity();
  double beh_sum = 0, beh_truncated = 0, beh_masked = 0, geo_sum = 0, geo_dropped = 0;
  double beh_min = std::numeric_limits<double>::infinity();
  double beh_max = -std::numeric_limits<double>::infinity();
  double geo_min = std::numeric_limits<double>::infinity();
  double geo_max = -std::numeric_limits<double>::infinity();
};

double clamp_d(double x, double lo, double hi) { return x < lo ? lo : x > hi ? hi : x; }

// Each completion i with n_i tokens: the sequence quantities first (GSPO's
// s_i = exp(mean_t d_t), the behaviour geometric mean g_i), then the tokens.
// d loss / d logp_t is summed by hand: a token's own terms, plus, for the
// GSPO sequence ratio, ds_i/dlogp_t = s_i / n_i times every term of the
// completion that depends on s_i.
Ref reference(const Batch& b, const LossConfig& c, bool with_ref, bool with_entropy,
              double num_seqs, double num_tokens) {
  Ref r;
  r.dlogp.assign(b.B * b.T, 0.0);
  r.dentropy.assign(b.B * b.T, 0.0);
  const bool kl_in_loss = c.beta > 0 && c.kl_in == LossConfig::KlIn::kLoss;
  const bool cispo = c.aggregation == Agg::kCispo;
  const bool seq_level = c.ratio_level != RL::kToken;
  const double lo = cispo ? 1 - c.cispo_eps_low : seq_level ? 1 - c.gspo_eps_low : 1 - c.eps_low;
  const double hi = cispo ? 1 + c.cispo_eps_high : seq_level ? 1 + c.gspo_eps_high : 1 + c.eps_high;
  for (int64_t i = 0; i < b.B; ++i) {
    const double A = b.adv[i];
    int64_t n_i = 0;
    double sum_d = 0, sum_lrho = 0;
    for (int64_t t = 0; t < b.T; ++t) {
      const int64_t k = i * b.T + t;
      if (!b.mask[k]) continue;
      ++n_i;
      sum_d += b.logp[k] - b.old_logp[k];
      sum_lrho += b.old_logp[k] - b.beh_logp[k];
    }
    const double s = std::exp(sum_d / std::max<int64_t>(n_i, 1));
    const double g = std::exp(sum_lrho / std::max<int64_t>(n_i, 1));
    const bool seq_kept = g >= c.behaviour_is_seq_low && g <= c.behaviour_is_seq_high;
    if (n_i > 0) {
      r.active_seqs += 1;
      r.seq_ratio_sum += s;
      r.seq_ratio_min = std::min(r.seq_ratio_min, s);
      r.seq_ratio_max = std::max(r.seq_ratio_max, s);
      r.seq_clip_low += cispo ? s < lo : (A < 0 && s < lo);
      r.seq_clip_high += cispo ? s > hi : (A > 0 && s > hi);
      r.geo_sum += g;
      r.geo_min = std::min(r.geo_min, g);
      r.geo_max = std::max(r.geo_max, g);
      r.geo_dropped += !seq_kept;
    }
    double seq_coef = 0;  // d loss / d s_i (ratio_level = sequence)
    for (int64_t t = 0; t < b.T; ++t) {
      const int64_t k = i * b.T + t;
      if (!b.mask[k]) continue;
      const double rtok = std::exp(b.logp[k] - b.old_logp[k]);
      const double ratio = seq_level ? s : rtok;
      // Behaviour weight.
      const double rho = std::exp(b.old_logp[k] - b.beh_logp[k]);
      double w = 1;
      switch (c.behaviour_is) {
        case BIS::kNone:
          break;
        case BIS::kTruncate:
          w = clamp_d(rho, c.behaviour_is_floor, c.behaviour_is_cap);
          break;
        case BIS::kMask:
          w = (rho >= c.behaviour_is_floor && rho <= c.behaviour_is_cap) ? rho : 0.0;
          break;
        case BIS::kSequenceMask:
          w = seq_kept ? rho : 0.0;
          break;
      }
      // Policy term pg and its derivative: d pg / d ratio (through the own
      // token or the sequence) or, for CISPO, d pg / d logp_t.
      double pg = 0, dpg_dratio = 0, dpg_dlogp = 0;
      if (cispo) {
        const double cw = clamp_d(ratio, lo, hi);
        pg = -cw * A * b.logp[k];
        dpg_dlogp = -cw * A;
      } else {
        const double unclipped = ratio * A, clipped = clamp_d(ratio, lo, hi) * A;
        pg = -(unclipped <= clipped ? unclipped : clipped);
        dpg_dratio = unclipped <= clipped ? -A : 0.0;
      }
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
      double W = 0;
      switch (c.aggregation) {
        case Agg::kGrpo:
          W = 1.0 / (static_cast<double>(n_i) * num_seqs);
          break;
        case Agg::kDapo:
        case Agg::kCispo:
          W = 1.0 / num_tokens;
          break;
        case Agg::kDrGrpo:
          W = 1.0 / (num_seqs * static_cast<double>(c.max_completion_length));
          break;
      }
      r.loss += W * (w * pg + (kl_in_loss ? c.beta * kl : 0.0));
      double d_own = W * (kl_in_loss ? c.beta * dkl : 0.0) + W * w * dpg_dlogp;
      switch (c.ratio_level) {
        case RL::kToken:
          d_own += W * w * dpg_dratio * rtok;  // d r_t / d logp_t = r_t
          break;
        case RL::kSequenceToken:
          d_own += W * w * dpg_dratio * s;  // sg(s) exp(logp - sg(logp)): own token, s
          break;
        case RL::kSequence:
          seq_coef += W * w * dpg_dratio;
          break;
      }
      r.dlogp[k] = d_own;
      if (with_entropy && c.entropy_coef != 0) {
        r.loss -= c.entropy_coef * b.entropy[k] / num_tokens;
        r.dentropy[k] = -c.entropy_coef / num_tokens;
      }
      r.num_tokens += 1;
      r.clip_low += cispo ? ratio < lo : (A < 0 && ratio < lo);
      r.clip_high += cispo ? ratio > hi : (A > 0 && ratio > hi);
      r.ratio_sum += rtok;
      r.ratio_min = std::min(r.ratio_min, rtok);
      r.ratio_max = std::max(r.ratio_max, rtok);
      r.beh_sum += rho;
      r.beh_min = std::min(r.beh_min, rho);
      r.beh_max = std::max(r.beh_max, rho);
      r.beh_truncated += rho > c.behaviour_is_cap || rho < c.behaviour_is_floor;
      r.beh_masked += w == 0.0;
    }
    // d s_i / d logp_t = s_i / n_i for every token of the completion.
    if (c.ratio_level == RL::kSequence && n_i > 0) {
      for (int64_t t = 0; t < b.T; ++t) {
        const int64_t k = i * b.T + t;
        if (b.mask[k]) r.dlogp[k] += seq_coef * s / static_cast<double>(n_i);
      }
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
  if (c.behaviour_is != BIS::kNone) in.behaviour_logp_BT = bt(b.beh_logp, b.B, b.T, dt);
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
  RL ratio_level = RL::kToken;
  BIS behaviour_is = BIS::kNone;
};

std::string name_of(const Variant& v) {
  return str_cat(to_string(v.agg), " eps=(", v.eps_low, ",", v.eps_high, ") beta=", v.beta,
                 " est=k", static_cast<int>(v.est) + 1, " ent=", v.entropy_coef,
                 " ref=", v.with_ref, " ratio_level=", to_string(v.ratio_level),
                 " behaviour_is=", to_string(v.behaviour_is));
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
    // GSPO and GSPO-token, alone and with KL + entropy.
    vs.push_back({agg, 0.2, 0.2, 0.0, Est::kK3, 0.0, false, RL::kSequence});
    vs.push_back({agg, 0.2, 0.2, 0.04, Est::kK3, 0.01, true, RL::kSequence});
    vs.push_back({agg, 0.2, 0.2, 0.0, Est::kK3, 0.0, false, RL::kSequenceToken});
    vs.push_back({agg, 0.2, 0.2, 0.04, Est::kK2, 0.0, true, RL::kSequenceToken});
    // Behaviour importance weights, token and sequence ratios.
    vs.push_back({agg, 0.2, 0.28, 0.04, Est::kK3, 0.0, true, RL::kToken, BIS::kTruncate});
    vs.push_back({agg, 0.2, 0.28, 0.0, Est::kK3, 0.0, false, RL::kToken, BIS::kMask});
    vs.push_back({agg, 0.2, 0.28, 0.04, Est::kK3, 0.0, true, RL::kToken, BIS::kSequenceMask});
    vs.push_back({agg, 0.2, 0.2, 0.0, Est::kK3, 0.0, false, RL::kSequence, BIS::kSequenceMask});
    vs.push_back({agg, 0.2, 0.2, 0.0, Est::kK3, 0.0, false, RL::kSequence, BIS::kTruncate});
    vs.push_back({agg, 0.2, 0.2, 0.0, Est::kK3, 0.0, false, RL::kSequenceToken, BIS::kTruncate});
  }
  // CISPO: token and sequence ratio, with KL, entropy and behaviour weights.
  vs.push_back({Agg::kCispo, 0.2, 0.2, 0.0, Est::kK3, 0.0, false});
  vs.push_back({Agg::kCispo, 0.2, 0.2, 0.04, Est::kK3, 0.01, true});
  vs.push_back({Agg::kCispo, 0.2, 0.2, 0.0, Est::kK3, 0.0, false, RL::kSequence});
  vs.push_back({Agg::kCispo, 0.2, 0.2, 0.0, Est::kK3, 0.0, true, RL::kToken, BIS::kTruncate});
  vs.push_back({Agg::kCispo, 0.2, 0.2, 0.0, Est::kK3, 0.0, false, RL::kToken, BIS::kSequenceMask});
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
  c.ratio_level = v.ratio_level;
  c.behaviour_is = v.behaviour_is;
  // Bounds that the random batches cross on both sides (the defaults, 3e-4
  // for GSPO or a cap of 2, would leave most branches untested).
  c.gspo_eps_low = 0.06;
  c.gspo_eps_high = 0.005;
  c.cispo_eps_low = 0.3;
  c.cispo_eps_high = 0.2;
  c.behaviour_is_floor = 0.85;
  c.behaviour_is_cap = 1.15;
  c.behaviour_is_seq_low = 0.95;
  c.behaviour_is_seq_high = 1.05;
  return c;
}

void expect_close(double got, double want, double rel, double abs_tol, const std::string& what) {
  EXPECT_NEAR(got, want, abs_tol + rel * std::fabs(want)) << what;
}

// Every variant, in double: the implementation equals the per-token loop to
// rounding (1e-12 relative: both are O(BT) sums of O(1) terms in fp64).
// Second batch: completions of very different lengths (1 to 200 tokens) and
// two fully masked ones, where a sequence ratio is an average over 1 or 200
// terms and the grpo normaliser over n_b differs 200-fold.
Batch ragged_batch() { return random_batch(21, 6, 200, {1, 200, 0, 7, 0, 150}); }

TEST(GrpoLoss, EveryVariantMatchesPerTokenReferenceInDouble) {
  for (const Batch& b : {random_batch(7, 9, 13), ragged_batch()})
    for (const Variant& v : all_variants()) {
      SCOPED_TRACE(str_cat(name_of(v), " T=", b.T));
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
        expect_close(dl.data_ptr<double>()[k], ref.dlogp[k], 1e-12, 1e-15,
                     str_cat("dlogp[", k, "]"));
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
      EXPECT_EQ(s.has_seq_ratio, v.ratio_level != RL::kToken);
      if (s.has_seq_ratio) {
        EXPECT_EQ(s.num_active_seqs, ref.active_seqs);
        expect_close(s.seq_ratio_sum, ref.seq_ratio_sum, 1e-12, 0, "seq_ratio_sum");
        expect_close(s.seq_ratio_min, ref.seq_ratio_min, 1e-12, 0, "seq_ratio_min");
        expect_close(s.seq_ratio_max, ref.seq_ratio_max, 1e-12, 0, "seq_ratio_max");
        EXPECT_EQ(s.seq_clip_low_count, ref.seq_clip_low);
        EXPECT_EQ(s.seq_clip_high_count, ref.seq_clip_high);
      }
      EXPECT_EQ(s.behaviour_is, v.behaviour_is);
      if (v.behaviour_is != BIS::kNone) {
        expect_close(s.behaviour_ratio_sum, ref.beh_sum, 1e-12, 0, "behaviour_ratio_sum");
        expect_close(s.behaviour_ratio_min, ref.beh_min, 1e-12, 0, "behaviour_ratio_min");
        expect_close(s.behaviour_ratio_max, ref.beh_max, 1e-12, 0, "behaviour_ratio_max");
        EXPECT_EQ(s.behaviour_truncated_count, ref.beh_truncated);
        EXPECT_EQ(s.behaviour_masked_count, ref.beh_masked);
      }
      if (v.behaviour_is == BIS::kSequenceMask) {
        EXPECT_EQ(s.num_active_seqs, ref.active_seqs);
        expect_close(s.behaviour_seq_ratio_sum, ref.geo_sum, 1e-12, 0, "geo_sum");
        expect_close(s.behaviour_seq_ratio_min, ref.geo_min, 1e-12, 0, "geo_min");
        expect_close(s.behaviour_seq_ratio_max, ref.geo_max, 1e-12, 0, "geo_max");
        EXPECT_EQ(s.behaviour_seq_masked_count, ref.geo_dropped);
      }
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

// The same for the new branches: on both test batches some completions have
// their GSPO ratio clipped on each side and some not, CISPO clips weights on
// both sides, and each behaviour mode truncates / masks some tokens or
// completions but not all.
TEST(GrpoLoss, TestBatchesExerciseSequenceCispoAndBehaviourBranches) {
  for (const Batch& b : {random_batch(7, 9, 13), ragged_batch()}) {
    SCOPED_TRACE(str_cat("T=", b.T));
    LossConfig c = config_of({Agg::kGrpo, 0.2, 0.2, 0.0, Est::kK3, 0.0, false, RL::kSequence});
    Ref r = reference(b, c, false, false, b.B, 1);
    EXPECT_GE(r.seq_clip_low + r.seq_clip_high, 1);
    EXPECT_LT(r.seq_clip_low + r.seq_clip_high, r.active_seqs);
    c.aggregation = Agg::kCispo;
    c.ratio_level = RL::kToken;
    r = reference(b, c, false, false, b.B, 1);
    EXPECT_GE(r.clip_low, 1);
    EXPECT_GE(r.clip_high, 1);
    c.behaviour_is = BIS::kTruncate;
    r = reference(b, c, false, false, b.B, 1);
    EXPECT_GE(r.beh_truncated, 2);
    EXPECT_LT(r.beh_truncated, r.num_tokens);
    c.behaviour_is = BIS::kSequenceMask;
    r = reference(b, c, false, false, b.B, 1);
    EXPECT_GE(r.geo_dropped, 1);
    EXPECT_LT(r.geo_dropped, r.active_seqs);
  }
  // The random batch (many short rows) puts completions on both sides of
  // the GSPO clip.
  const Batch b = random_batch(7, 9, 13);
  const Ref r =
      reference(b, config_of({Agg::kGrpo, 0.2, 0.2, 0.0, Est::kK3, 0.0, false, RL::kSequence}),
                false, false, b.B, 1);
  EXPECT_GE(r.seq_clip_low, 1);
  EXPECT_GE(r.seq_clip_high, 1);
}

// GSPO's paper: with one advantage per completion, GSPO-token equals GSPO in
// value and gradient.  Per-token behaviour weights break the equality (the
// sequence ratio spreads a completion's weighted gradient evenly over its
// tokens, GSPO-token keeps each token's own weight), so both are computed.
TEST(GrpoLoss, GspoTokenEqualsGspoUnlessTokensAreWeighted) {
  const Batch b = ragged_batch();
  for (Agg agg : {Agg::kGrpo, Agg::kDapo, Agg::kDrGrpo}) {
    SCOPED_TRACE(to_string(agg));
    LossConfig c = config_of({agg, 0.2, 0.2, 0.0, Est::kK3, 0.0, false, RL::kSequence});
    const ImplRun seq = run_impl(b, c, false, false, at::kDouble);
    c.ratio_level = RL::kSequenceToken;
    const ImplRun tok = run_impl(b, c, false, false, at::kDouble);
    EXPECT_NEAR(seq.out.loss.item<double>(), tok.out.loss.item<double>(), 1e-14);
    EXPECT_TRUE(at::allclose(seq.dlogp, tok.dlogp, 1e-12, 1e-16));
    c.behaviour_is = BIS::kTruncate;
    const ImplRun tok_w = run_impl(b, c, false, false, at::kDouble);
    c.ratio_level = RL::kSequence;
    const ImplRun seq_w = run_impl(b, c, false, false, at::kDouble);
    EXPECT_NEAR(seq_w.out.loss.item<double>(), tok_w.out.loss.item<double>(), 1e-14);
    EXPECT_GT((seq_w.dlogp - tok_w.dlogp).abs().max().item<double>(), 1e-6);
  }
}

// CISPO's point: a token whose ratio is far above the clip keeps its
// gradient, -clip(r) * A / num_tokens; the PPO surrogate zeroes it.
TEST(GrpoLoss, CispoKeepsTheGradientOfClippedTokens) {
  at::Tensor logp = at::tensor({-0.5, -1.0, -2.0}, at::kDouble).view({1, 3}).requires_grad_(true);
  LossInputs in;
  in.logp_BT = logp;
  in.old_logp_BT = at::tensor({-1.5, -1.0, -1.0}, at::kDouble).view({1, 3});  // r = e, 1, 1/e
  in.advantages_B = at::tensor({2.0}, at::kDouble);
  in.mask_BT = at::ones({1, 3}, at::kBool);
  LossConfig c;
  c.aggregation = Agg::kCispo;
  c.cispo_eps_low = 0.5;
  c.cispo_eps_high = 0.5;
  LossOutput out = grpo_loss(in, c);
  out.loss.backward();
  const at::Tensor want = at::tensor({-1.5 * 2 / 3, -1.0 * 2 / 3, -0.5 * 2 / 3}, at::kDouble);
  EXPECT_TRUE(at::allclose(logp.grad().view({3}), want, 1e-14, 1e-15)) << logp.grad();
  EXPECT_EQ(out.stats.clip_high_count, 1);
  EXPECT_EQ(out.stats.clip_low_count, 1);
  logp.mutable_grad().zero_();
  c.aggregation = Agg::kDapo;
  c.eps_high = 0.5;
  grpo_loss(in, c).loss.backward();
  EXPECT_EQ(logp.grad()[0][0].item<double>(), 0.0);  // the surrogate drops it
}

// sequence_mask drops a whole completion when its geometric-mean behaviour
// ratio leaves the band, even if no single token ratio is extreme, and keeps
// one whose single token is extreme but whose mean is inside.
TEST(GrpoLoss, SequenceMaskDropsWholeCompletionsByGeometricMean) {
  at::Tensor logp = at::full({2, 4}, -1.0, at::kDouble).requires_grad_(true);
  LossInputs in;
  in.logp_BT = logp;
  in.old_logp_BT = at::full({2, 4}, -1.0, at::kDouble);
  // Row 0: every token off by 0.02 in log space (geometric mean e^0.02 >
  // 1.01).  Row 1: one token off by 0.06, the others by -0.02 (mean 0).
  in.behaviour_logp_BT =
      at::tensor({-1.02, -1.02, -1.02, -1.02, -1.06, -0.98, -0.98, -0.98}, at::kDouble)
          .view({2, 4});
  in.advantages_B = at::tensor({1.0, 1.0}, at::kDouble);
  in.mask_BT = at::ones({2, 4}, at::kBool);
  LossConfig c;
  c.behaviour_is = BIS::kSequenceMask;
  c.behaviour_is_seq_low = 0.99;
  c.behaviour_is_seq_high = 1.01;
  LossOutput out = grpo_loss(in, c);
  out.loss.backward();
  EXPECT_EQ(logp.grad()[0].abs().sum().item<double>(), 0.0);
  EXPECT_NEAR(logp.grad()[1][0].item<double>(), -std::exp(0.06) / 8, 1e-14);
  EXPECT_NEAR(logp.grad()[1][1].item<double>(), -std::exp(-0.02) / 8, 1e-14);
  EXPECT_EQ(out.stats.behaviour_seq_masked_count, 1);
  EXPECT_EQ(out.stats.behaviour_masked_count, 4);
  // The token mode, band [0.99, 1.03], masks the other way round: row 0's
  // ratios e^0.02 are all inside, row 1's e^0.06 and e^-0.02 all outside.
  c.behaviour_is = BIS::kMask;
  c.behaviour_is_floor = 0.99;
  c.behaviour_is_cap = 1.03;
  logp.mutable_grad().zero_();
  out = grpo_loss(in, c);
  out.loss.backward();
  EXPECT_EQ(out.stats.behaviour_masked_count, 4);
  EXPECT_NEAR(logp.grad()[0][2].item<double>(), -std::exp(0.02) / 8, 1e-14);
  EXPECT_EQ(logp.grad()[1].abs().sum().item<double>(), 0.0);
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
      s.beh_logp = cut(b.beh_logp);
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
  LossInputs in{logp, logp.detach().clone(), {}, at::tensor({0.0, 5.0, 0.0}, at::kDouble), m, {},
                {}};
  grpo_loss(in, LossConfig{}).loss.backward();
  EXPECT_EQ(logp.grad().abs().sum().item<double>(), 0.0);
}

// ---- config ---------------------------------------------------------------------------

// The error LossConfig::from gives for recipe text bad.yaml ("" if none).
std::string error_of(const std::string& yaml) {
  Recipe bad = Recipe::from_string(yaml, "bad.yaml");
  try {
    LossConfig::from(bad.section("loss"));
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

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

TEST(LossConfig, ReadsGspoCispoAndBehaviourKeysWithPaperDefaults) {
  Recipe d = Recipe::from_string("loss:\n  ratio_level: sequence\n", "d.yaml");
  const LossConfig dc = LossConfig::from(d.section("loss"));
  EXPECT_EQ(dc.ratio_level, RL::kSequence);
  EXPECT_DOUBLE_EQ(dc.gspo_eps_low, 3e-4);  // GSPO paper
  EXPECT_DOUBLE_EQ(dc.gspo_eps_high, 4e-4);
  EXPECT_DOUBLE_EQ(dc.cispo_eps_low, 1.0);  // no lower bound (MiniMax-M1)
  EXPECT_DOUBLE_EQ(dc.cispo_eps_high, 4.0);
  EXPECT_EQ(dc.behaviour_is, BIS::kNone);
  Recipe r = Recipe::from_string(
      "loss:\n  aggregation: cispo\n  ratio_level: sequence\n  cispo_eps_low: 0.5\n"
      "  cispo_eps_high: 2.0\n  behaviour_is: sequence_mask\n  behaviour_is_seq_low: 0.998\n"
      "  behaviour_is_seq_high: 1.003\n  behaviour_is_cap: 3\n  behaviour_is_floor: 0.5\n",
      "r.yaml");
  const LossConfig c = LossConfig::from(r.section("loss"));
  EXPECT_EQ(c.aggregation, Agg::kCispo);
  EXPECT_EQ(c.ratio_level, RL::kSequence);
  EXPECT_DOUBLE_EQ(c.cispo_eps_low, 0.5);
  EXPECT_DOUBLE_EQ(c.cispo_eps_high, 2.0);
  EXPECT_EQ(c.behaviour_is, BIS::kSequenceMask);
  EXPECT_DOUBLE_EQ(c.behaviour_is_seq_low, 0.998);
  EXPECT_DOUBLE_EQ(c.behaviour_is_seq_high, 1.003);
  EXPECT_DOUBLE_EQ(c.behaviour_is_cap, 3.0);
  EXPECT_DOUBLE_EQ(c.behaviour_is_floor, 0.5);
  EXPECT_NO_THROW(r.check_all_read());

  std::string e = error_of("loss:\n  ratio_level: seq\n");
  EXPECT_NE(e.find("ratio_level"), std::string::npos) << e;
  e = error_of("loss:\n  aggregation: cispo\n  ratio_level: sequence_token\n");
  EXPECT_NE(e.find("bad.yaml:3"), std::string::npos) << e;
  e = error_of("loss:\n  gspo_eps_low: -1\n");
  EXPECT_NE(e.find("loss.gspo_eps_low"), std::string::npos) << e;
  e = error_of("loss:\n  behaviour_is: sequence_mask\n  behaviour_is_seq_low: 1.2\n");
  EXPECT_NE(e.find("loss.behaviour_is_seq_low"), std::string::npos) << e;
  e = error_of("loss:\n  behaviour_is: truncate\n  behaviour_is_cap: 0\n");
  EXPECT_NE(e.find("bad.yaml:3"), std::string::npos) << e;
  // A loss call without the behaviour log-probs names them.
  LossInputs in;
  in.logp_BT = at::zeros({1, 2}, at::kDouble);
  in.old_logp_BT = at::zeros({1, 2}, at::kDouble);
  in.advantages_B = at::zeros({1}, at::kDouble);
  in.mask_BT = at::ones({1, 2}, at::kBool);
  LossConfig t;
  t.behaviour_is = BIS::kTruncate;
  try {
    grpo_loss(in, t);
    FAIL() << "behaviour_is without behaviour_logp_BT accepted";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("behaviour_logp_BT"), std::string::npos) << err.what();
  }
}

// The new metrics: sequence means are over completions with tokens, the
// behaviour ones over tokens; an empty call adds the same names.
TEST(LossStats, SequenceAndBehaviourMetricsAndEmptyNames) {
  const Batch b = ragged_batch();
  const LossConfig c = config_of(
      {Agg::kGrpo, 0.2, 0.2, 0.0, Est::kK3, 0.0, false, RL::kSequence, BIS::kSequenceMask});
  const ImplRun got = run_impl(b, c, false, false, at::kDouble);
  MetricReducer m;
  got.out.stats.add_to(m);
  const auto v = m.local();
  const Ref ref = reference(b, c, false, false, b.B, got.out.stats.num_tokens);
  EXPECT_EQ(ref.active_seqs, 4);  // two of the six rows are empty
  EXPECT_NEAR(v.at("loss/seq_ratio_mean"), ref.seq_ratio_sum / 4, 1e-12);
  EXPECT_NEAR(v.at("loss/seq_clip_frac_low"), ref.seq_clip_low / 4, 1e-15);
  EXPECT_NEAR(v.at("loss/seq_clip_frac_high"), ref.seq_clip_high / 4, 1e-15);
  EXPECT_NEAR(v.at("loss/behaviour_ratio_mean"), ref.beh_sum / ref.num_tokens, 1e-12);
  EXPECT_NEAR(v.at("loss/behaviour_masked_frac"), ref.beh_masked / ref.num_tokens, 1e-15);
  EXPECT_NEAR(v.at("loss/behaviour_seq_masked_frac"), ref.geo_dropped / 4, 1e-15);
  EXPECT_NEAR(v.at("loss/behaviour_seq_ratio_max"), ref.geo_max, 1e-12);
  MetricReducer e;
  LossStats::empty(c, false, false).add_to(e);
  std::vector<std::string> want, have;
  for (const auto& [k, x] : v) want.push_back(k);
  for (const auto& [k, x] : e.local()) have.push_back(k);
  EXPECT_EQ(have, want);
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
