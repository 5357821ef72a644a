// The loss variants of docs/LOSSES.md run for real in the GRPO loop on the
// tiny policy (a few steps each), each asserting the metric it changes:
// GSPO's sequence ratio and the share of completions it clips, CISPO's
// share of clipped IS weights, and the behaviour/learner importance weights
// of the three behaviour_is modes.  The numbers of each formula are pinned
// by grpo_loss_test.cpp (fp64 reference) and trl_oracle_test.cpp (TRL).
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/comm.h"
#include "core/config.h"
#include "loop_scratch.h"
#include "tiny_run.h"
#include "trainer/grpo_trainer.h"

using namespace zerorl;

namespace {

ZR_LOOP_SCRATCH("lossloop")

// Two minibatches per step: the second is trained after one update, so the
// policy has moved away from the old log-probs (recomputed, not the
// rollout's) and the ratios are not all 1.  Overlong shaping gives the random
// policy's groups distinct rewards, so the advantages are not all 0.
std::vector<nlohmann::json> run_metrics(const std::string& name, std::vector<std::string> o) {
  for (std::string x :
       {"train.steps=3", "train.minibatches=2", "eval.every=0", "checkpoint.every=0",
        "loss.overlong=soft", "loss.max_completion_length=12", "loss.overlong_buffer=8"})
    o.push_back(x);
  Recipe r = Recipe::from_string(recipe_text(name), "test.yaml");
  r.apply_overrides(o);
  auto comm = make_comm("single");
  const TrainResult res = run_train(r, *comm, "");
  return test::read_jsonl(res.run_dir + "/metrics.jsonl");
}

double max_of(const std::vector<nlohmann::json>& m, const std::string& key) {
  double v = -1e300;
  for (const auto& j : m) {
    EXPECT_TRUE(j.contains(key) && j[key].is_number()) << key << " missing from " << j.dump();
    if (j.contains(key) && j[key].is_number()) v = std::max(v, j[key].get<double>());
  }
  return v;
}

double min_of(const std::vector<nlohmann::json>& m, const std::string& key) {
  double v = 1e300;
  for (const auto& j : m) {
    EXPECT_TRUE(j.contains(key) && j[key].is_number()) << key << " missing from " << j.dump();
    if (j.contains(key) && j[key].is_number()) v = std::min(v, j[key].get<double>());
  }
  return v;
}

bool has_key_prefix(const std::vector<nlohmann::json>& m, const std::string& prefix) {
  for (const auto& j : m)
    for (auto it = j.begin(); it != j.end(); ++it)
      if (it.key().rfind(prefix, 0) == 0) return true;
  return false;
}

}  // namespace

// GSPO with the paper's bounds (3e-4 / 4e-4): after one update the
// length-normalised ratios of the second minibatch leave the band for some
// completions, which the sequence clip metrics count.
TEST(LossLoop, GspoClipsWholeCompletionsByTheirSequenceRatio) {
  auto m = run_metrics("gspo", {"loss.ratio_level=sequence"});
  EXPECT_GT(max_of(m, "loss/seq_ratio_max"), 1 + 4e-4);
  EXPECT_LT(min_of(m, "loss/seq_ratio_min"), 1 - 3e-4);
  EXPECT_GT(max_of(m, "loss/seq_clip_frac_low") + max_of(m, "loss/seq_clip_frac_high"), 0.0);
  EXPECT_LE(max_of(m, "loss/seq_clip_frac_high"), 1.0);
  EXPECT_FALSE(has_key_prefix(m, "loss/behaviour_"));
}

// CISPO with narrow bounds clamps some IS weights (clip_frac), and has no
// sequence ratio metrics at token level.
TEST(LossLoop, CispoClampsImportanceWeights) {
  auto m = run_metrics(
      "cispo", {"loss.aggregation=cispo", "loss.cispo_eps_low=0.01", "loss.cispo_eps_high=0.01"});
  EXPECT_GT(max_of(m, "loss/clip_frac_low"), 0.0);
  EXPECT_GT(max_of(m, "loss/clip_frac_high"), 0.0);
  EXPECT_FALSE(has_key_prefix(m, "loss/seq_"));
}

// The behaviour/learner gap of this CPU run is numerics only: the rollout's
// incremental decode and the learner's teacher-forced pass agree to ~5e-7 in
// each token's probability.  The metrics see it, and bounds inside it
// truncate, mask tokens, or drop whole completions.
TEST(LossLoop, BehaviourWeightsSeeTheRolloutLearnerGap) {
  const std::vector<std::string> bounds = {"loss.behaviour_is_cap=1.0000001",
                                           "loss.behaviour_is_floor=0.9999999", "train.steps=2"};
  auto with = [&](std::vector<std::string> o) {
    o.insert(o.end(), bounds.begin(), bounds.end());
    return o;
  };
  auto t = run_metrics("bis_truncate", with({"loss.behaviour_is=truncate"}));
  EXPECT_GT(max_of(t, "loss/behaviour_ratio_max"), 1.0);
  EXPECT_LT(max_of(t, "loss/behaviour_ratio_max"), 1.0 + 1e-5);
  EXPECT_LT(min_of(t, "loss/behaviour_ratio_min"), 1.0);
  EXPECT_GT(max_of(t, "loss/behaviour_truncated_frac"), 0.0);
  auto k = run_metrics("bis_mask", with({"loss.behaviour_is=mask"}));
  EXPECT_GT(max_of(k, "loss/behaviour_masked_frac"), 0.0);
  EXPECT_LT(max_of(k, "loss/behaviour_masked_frac"), 1.0);
  auto s = run_metrics("bis_seqmask", with({"loss.behaviour_is=sequence_mask",
                                            "loss.behaviour_is_seq_low=0.99999999",
                                            "loss.behaviour_is_seq_high=1.00000001"}));
  EXPECT_GT(max_of(s, "loss/behaviour_seq_masked_frac"), 0.0);
  EXPECT_LT(min_of(s, "loss/behaviour_seq_masked_frac"), 1.0);
  EXPECT_GT(max_of(s, "loss/behaviour_seq_ratio_max"), 1.0);
}
