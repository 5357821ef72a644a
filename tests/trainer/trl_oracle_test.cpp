// grpo_loss and compute_advantages against TRL 1.16 (the project's venv) as
// an oracle: TRL's GRPOTrainer._compute_loss runs on the same per-token
// tensors (see trl_grpo_oracle.py for how it is invoked), in float64 on both
// sides, so the tolerance is rounding only: 1e-12 relative.
//
// Mapping of TRL loss_type to ours: grpo -> grpo, dapo and bnpo -> dapo (one
// batch, one process: both are the token mean), dr_grpo -> dr_grpo with the
// same max_completion_length, cispo -> cispo.  TRL's KL is k3 in the loss; its
// entropy bonus is the token mean, as ours.
//
// importance_sampling_level="sequence" -> ratio_level: sequence (GSPO), with
// TRL's epsilon/epsilon_high as our gspo_eps_low/gspo_eps_high.  TRL's cispo
// clamps the ratio at epsilon_high itself, with no lower bound: ours with
// cispo_eps_low = 1 (bound 0) and cispo_eps_high = epsilon_high - 1.  TRL 1.16
// has no GSPO-token level and no geometric-mean sequence mask (its
// vllm_importance_sampling_mode="sequence_mask" bands the product ratio), so
// those are pinned by the fp64 reference only (grpo_loss_test.cpp).
//
// behaviour_is: truncate / mask -> TRL's vllm_importance_sampling_mode
// token_truncate / token_mask with clip_min = floor, clip_max = cap.  TRL
// computes those weights inline in _generate_and_score_completions (not a
// function that can be called alone), so trl_grpo_oracle.py restates those
// few lines; what _compute_loss does with them (which term they multiply,
// the normalisers) is TRL's own code.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <random>

#include "core/error.h"
#include "trainer/advantages.h"
#include "trainer/grpo_loss.h"

namespace zerorl {
namespace {

using json = nlohmann::json;

struct Case {
  std::string trl_loss_type;
  std::string trl_level = "token";  // importance_sampling_level
  double trl_eps_low = 0, trl_eps_high = 0;
  LossConfig cfg;
  int64_t B, T;
  std::vector<double> logp, old_logp, ref_logp, entropy, adv;
  std::vector<double> beh_logp;  // the rollout's (behaviour) log-probs
  std::vector<int64_t> mask;
  std::string trl_is_mode;  // vllm_importance_sampling_mode, "" for none
};

Case make_case(uint64_t seed, const std::string& trl_type, double eps_low, double eps_high,
               double beta, double ent, const std::string& level = "token") {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> nrm(0, 1);
  std::uniform_real_distribution<double> uni(0, 1);
  Case c;
  c.trl_loss_type = trl_type;
  c.B = 6;
  c.T = 11;
  c.trl_level = level;
  c.trl_eps_low = eps_low;
  c.trl_eps_high = eps_high;
  c.cfg.aggregation = trl_type == "grpo"      ? LossConfig::Aggregation::kGrpo
                      : trl_type == "dr_grpo" ? LossConfig::Aggregation::kDrGrpo
                      : trl_type == "cispo"   ? LossConfig::Aggregation::kCispo
                                              : LossConfig::Aggregation::kDapo;
  c.cfg.ratio_level =
      level == "sequence" ? LossConfig::RatioLevel::kSequence : LossConfig::RatioLevel::kToken;
  c.cfg.eps_low = eps_low;
  c.cfg.eps_high = eps_high;
  c.cfg.gspo_eps_low = eps_low;
  c.cfg.gspo_eps_high = eps_high;
  c.cfg.cispo_eps_low = 1.0;
  c.cfg.cispo_eps_high = eps_high - 1.0;
  c.cfg.beta = beta;
  c.cfg.kl_estimator = LossConfig::KlEstimator::kK3;
  c.cfg.entropy_coef = ent;
  c.cfg.max_completion_length = c.T;
  for (int64_t i = 0; i < c.B; ++i) {
    const int64_t len = i == 0 ? c.T : 1 + static_cast<int64_t>(uni(gen) * (c.T - 1));
    c.adv.push_back(nrm(gen));
    for (int64_t t = 0; t < c.T; ++t) {
      const double lp = -0.05 - 3 * uni(gen);
      c.logp.push_back(lp);
      c.old_logp.push_back(lp + 0.3 * nrm(gen));
      c.ref_logp.push_back(lp + 0.5 * nrm(gen));
      c.entropy.push_back(0.1 + 2 * uni(gen));
      c.mask.push_back(t < len);  // TRL multiplies by the mask: padding must be finite
    }
  }
  std::mt19937_64 beh_gen(seed + 7777);  // a stream of its own: the cases above stay put
  for (double lp : c.old_logp) c.beh_logp.push_back(lp + 0.15 * nrm(beh_gen));
  return c;
}

// Token behaviour weights on rho = exp(old - behaviour), bounds [0.85, 1.15]
// (crossed on both sides by the 0.15 noise above).  TRL: its
// vllm_importance_sampling_mode token_truncate / token_mask with
// clip_min/clip_max, whose weights _compute_loss multiplies into the policy
// term (before the KL term is added).
Case with_behaviour(Case c, LossConfig::BehaviourIs mode) {
  c.cfg.behaviour_is = mode;
  c.cfg.behaviour_is_floor = 0.85;
  c.cfg.behaviour_is_cap = 1.15;
  c.trl_is_mode = mode == LossConfig::BehaviourIs::kTruncate ? "token_truncate" : "token_mask";
  return c;
}

std::string read_file(const std::string& p) {
  std::ifstream f(p);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

class TrlOracle : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::vector<std::string> types = {"grpo", "bnpo", "dapo", "dr_grpo"};
    uint64_t seed = 100;
    for (const auto& t : types) {
      for (double beta : {0.0, 0.04}) {
        for (auto eps : {std::pair<double, double>{0.2, 0.2}, {0.2, 0.28}}) {
          for (double ent : {0.0, 0.01})
            cases_.push_back(make_case(seed++, t, eps.first, eps.second, beta, ent));
        }
      }
    }
    std::mt19937_64 gen(7);
    std::normal_distribution<double> nrm(0, 1);
    for (int i = 0; i < 8; ++i) rewards_.push_back(nrm(gen));
    // GSPO (sequence ratio): the paper's bounds (3e-4, 4e-4: most sequences
    // clipped) and wider ones (some clipped, some not), under each
    // aggregation; CISPO with TRL's recommended cap 5 and a cap of 1.2 that
    // clips, token and sequence ratios.
    for (const std::string t : {"grpo", "dapo", "dr_grpo"}) {
      for (double beta : {0.0, 0.04}) {
        for (auto eps : {std::pair<double, double>{3e-4, 4e-4}, {0.05, 0.08}})
          cases_.push_back(make_case(seed++, t, eps.first, eps.second, beta, 0.01, "sequence"));
      }
    }
    for (const std::string level : {"token", "sequence"}) {
      for (double beta : {0.0, 0.04}) {
        for (double cap : {5.0, 1.2})
          cases_.push_back(make_case(seed++, "cispo", 0.2, cap, beta, 0.01, level));
      }
    }
    // Token behaviour weights under the surrogate (token and sequence ratio)
    // and CISPO, with the KL term on (which they must not weight).
    for (auto mode : {LossConfig::BehaviourIs::kTruncate, LossConfig::BehaviourIs::kMask}) {
      cases_.push_back(with_behaviour(make_case(seed++, "grpo", 0.2, 0.28, 0.04, 0.01), mode));
      cases_.push_back(with_behaviour(make_case(seed++, "dapo", 0.2, 0.28, 0.04, 0.0), mode));
      cases_.push_back(
          with_behaviour(make_case(seed++, "grpo", 0.05, 0.08, 0.04, 0.0, "sequence"), mode));
      cases_.push_back(with_behaviour(make_case(seed++, "cispo", 0.2, 1.2, 0.04, 0.0), mode));
    }
    for (double r : {1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.5, 0.5})
      rewards_.push_back(r);

    json req;
    req["cases"] = json::array();
    for (const Case& c : cases_) {
      req["cases"].push_back({{"loss_type", c.trl_loss_type},
                              {"importance_sampling_level", c.trl_level},
                              {"eps_low", c.trl_eps_low},
                              {"eps_high", c.trl_eps_high},
                              {"beta", c.cfg.beta},
                              {"entropy_coef", c.cfg.entropy_coef},
                              {"max_completion_length", c.cfg.max_completion_length},
                              {"B", c.B},
                              {"T", c.T},
                              {"logp", c.logp},
                              {"old_logp", c.old_logp},
                              {"ref_logp", c.ref_logp},
                              {"entropy", c.entropy},
                              {"mask", c.mask},
                              {"beh_logp", c.beh_logp},
                              {"is_mode", c.trl_is_mode},
                              {"is_clip_min", c.cfg.behaviour_is_floor},
                              {"is_clip_max", c.cfg.behaviour_is_cap},
                              {"adv", c.adv}});
    }
    req["rewards"] = rewards_;
    req["group_size"] = 4;
    const std::string dir = ZR_BINARY_DIR;
    const std::string in = dir + "/trainer_trl_oracle_in.json",
                      out = dir + "/trainer_trl_oracle_out.json";
    std::ofstream(in) << std::setprecision(17) << req.dump();
    std::remove(out.c_str());
    const std::string cmd =
        str_cat(ZR_PYTHON, " ", ZR_SOURCE_DIR, "/tests/trainer/trl_grpo_oracle.py ", in, " ", out);
    rc_ = std::system(cmd.c_str());
    if (rc_ == 0) reply_ = json::parse(read_file(out));
  }
  static std::vector<Case> cases_;
  static std::vector<double> rewards_;
  static json reply_;
  static int rc_;
};
std::vector<Case> TrlOracle::cases_;
std::vector<double> TrlOracle::rewards_;
json TrlOracle::reply_;
int TrlOracle::rc_ = -1;

void expect_rel(double got, double want, double rel, const std::string& what) {
  EXPECT_NEAR(got, want, 1e-15 + rel * std::fabs(want)) << what;
}

TEST_F(TrlOracle, LossAndGradientMatchTrlComputeLoss) {
  ASSERT_EQ(rc_, 0) << "the TRL oracle failed to run (see its output above)";
  ASSERT_EQ(reply_["cases"].size(), cases_.size());
  for (size_t i = 0; i < cases_.size(); ++i) {
    const Case& c = cases_[i];
    SCOPED_TRACE(str_cat("trl loss_type=", c.trl_loss_type, " level=", c.trl_level, " eps=(",
                         c.trl_eps_low, ",", c.trl_eps_high, ") is_mode=", c.trl_is_mode,
                         " beta=", c.cfg.beta, " entropy_coef=", c.cfg.entropy_coef));
    const json& want = reply_["cases"][i];
    LossInputs in;
    auto bt = [&](const std::vector<double>& v) {
      return at::tensor(v, at::kDouble).view({c.B, c.T});
    };
    in.logp_BT = bt(c.logp).requires_grad_(true);
    in.old_logp_BT = bt(c.old_logp);
    in.ref_logp_BT = bt(c.ref_logp);
    in.entropy_BT = bt(c.entropy).requires_grad_(true);
    in.behaviour_logp_BT = bt(c.beh_logp);
    in.advantages_B = at::tensor(c.adv, at::kDouble);
    in.mask_BT = at::tensor(c.mask, at::kLong).view({c.B, c.T});
    const LossOutput out = grpo_loss(in, c.cfg);
    out.loss.backward();
    expect_rel(out.loss.item<double>(), want["loss"].get<double>(), 1e-12, "loss");
    const std::vector<double> gl = want["grad_logp"].get<std::vector<double>>();
    const std::vector<double> ge = want["grad_entropy"].get<std::vector<double>>();
    const at::Tensor my_gl = in.logp_BT.grad().contiguous();
    const at::Tensor my_ge = in.entropy_BT.grad().defined() ? in.entropy_BT.grad().contiguous()
                                                            : at::zeros({c.B, c.T}, at::kDouble);
    for (int64_t k = 0; k < c.B * c.T; ++k) {
      expect_rel(my_gl.data_ptr<double>()[k], gl[k], 1e-12, str_cat("dlogp[", k, "]"));
      expect_rel(my_ge.data_ptr<double>()[k], ge[k], 1e-12, str_cat("dentropy[", k, "]"));
    }
  }
}

TEST_F(TrlOracle, GroupAdvantagesMatchTrlScaleRewardsGroup) {
  ASSERT_EQ(rc_, 0) << "the TRL oracle failed to run";
  const std::vector<double> want = reply_["advantages"].get<std::vector<double>>();
  AdvantageConfig cfg;  // defaults: grpo, sample std, eps 1e-4 = TRL's
  const GroupAdvantages got = compute_advantages(rewards_, 4, cfg);
  ASSERT_EQ(want.size(), got.advantages.size());
  // 1e-7, not 1e-12: TRL's nanstd computes the Bessel factor count/(count-1)
  // from integer tensors, which torch divides in float32 (4/3 -> 1.3333334,
  // 2.5e-8 relative in the variance).  Population instead of sample std, or
  // another eps, would differ by > 1e-5.
  for (size_t i = 0; i < want.size(); ++i)
    expect_rel(got.advantages[i], want[i], 1e-7, str_cat("A[", i, "]"));
  EXPECT_EQ(got.num_zero_spread_groups, 1);  // the {0.5 x 4} group: 0 on both sides
}

}  // namespace
}  // namespace zerorl
