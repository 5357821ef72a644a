// Variants of the GRPO step that were only unit-tested, run through the real
// loop on the tiny policy (1-2 steps each), each checked on the output it
// changes: RLOO's leave-one-out advantages, the k1/k2/k3 KL estimators'
// metric, the KL penalty in the reward, soft overlong shaping and overlong
// masking, and a command reward served by two worker processes.
//
// Runs that differ only in a loss option sample the same step-1 completions
// (sampling streams are (seed, step, prompt, sample); the policy is the
// initial one), so their samples.jsonl lines compare one to one.  The soft
// overlong penalty gives the random policy's groups a reward spread.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/comm.h"
#include "core/config.h"
#include "loop_scratch.h"
#include "tiny_run.h"
#include "trainer/evaluate.h"
#include "trainer/grpo_trainer.h"

using namespace zerorl;
using nlohmann::json;

namespace {

ZR_LOOP_SCRATCH("loopvar")

constexpr long kG = 4;

struct Outputs {
  std::vector<json> metrics;  // one per step
  std::vector<json> samples;  // every completion of every step
};

Outputs train(const std::string& name, std::vector<std::string> o) {
  Recipe r = Recipe::from_string(recipe_text(name), "test.yaml");
  for (std::string x : {"eval.every=0", "checkpoint.every=0", "train.sample_every=1",
                        "train.samples_per_log=16", "train.prompts_per_step=4"})
    o.push_back(x);
  r.apply_overrides(o);
  auto comm = make_comm("single");
  TrainResult res = run_train(r, *comm);
  return {test::read_jsonl(res.run_dir + "/metrics.jsonl"),
          test::read_jsonl(res.run_dir + "/samples.jsonl")};
}

const std::vector<std::string> kSpread = {"loss.overlong=soft", "loss.max_completion_length=12",
                                          "loss.overlong_buffer=8"};

std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::vector<json> step_samples(const Outputs& r, long step) {
  std::vector<json> out;
  for (const auto& s : r.samples)
    if (s["step"].get<long>() == step) out.push_back(s);
  return out;
}

TEST(LoopVariants, RlooAdvantagesAreLeaveOneOutBaselines) {
  const Outputs r = train("rloo", with(kSpread, {"advantage.estimator=rloo", "train.steps=2"}));
  ASSERT_EQ(r.samples.size(), 2u * 16u);
  long groups_with_spread = 0;
  for (size_t g = 0; g < r.samples.size(); g += kG) {
    double sum = 0;
    for (long i = 0; i < kG; ++i) sum += r.samples[g + i]["reward"].get<double>();
    double lo = 1e9, hi = -1e9;
    for (long i = 0; i < kG; ++i) {
      const double ri = r.samples[g + i]["reward"].get<double>();
      lo = std::min(lo, ri);
      hi = std::max(hi, ri);
      // A_i = r_i - mean_{j != i} r_j
      EXPECT_NEAR(r.samples[g + i]["advantage"].get<double>(), ri - (sum - ri) / (kG - 1), 1e-12)
          << "sample " << g + i;
    }
    groups_with_spread += hi > lo;
  }
  EXPECT_GT(groups_with_spread, 2)
      << "too few groups with a reward spread to tell estimators apart";
}

TEST(LoopVariants, KlEstimatorsK1K2K3EachShapeTheKlMetric) {
  std::map<std::string, Outputs> runs;
  for (std::string k : {"k1", "k2", "k3"})
    runs[k] = train("kl_" + k,
                    with(kSpread, {"loss.beta=0.04", "loss.kl_estimator=" + k, "train.steps=2"}));
  for (auto& [k, r] : runs) {
    ASSERT_EQ(r.metrics.size(), 2u) << k;
    EXPECT_EQ(r.metrics[0]["loss/kl"].get<double>(), 0.0) << k << ": step 1 is the reference";
  }
  // k2 and k3 have no gradient at the reference, so their step-1 updates are
  // the same and step 2 samples the same tokens: x^2/2 and e^x - x - 1 agree
  // to second order in x = ref - logp but are not equal.
  const double k1 = runs["k1"].metrics[1]["loss/kl"].get<double>();
  const double k2 = runs["k2"].metrics[1]["loss/kl"].get<double>();
  const double k3 = runs["k3"].metrics[1]["loss/kl"].get<double>();
  std::printf("step-2 KL: k1 %.3e, k2 %.3e, k3 %.3e\n", k1, k2, k3);
  EXPECT_EQ(runs["k2"].metrics[1]["reward/mean"], runs["k3"].metrics[1]["reward/mean"]);
  EXPECT_GT(k2, 0.0);
  EXPECT_GT(k3, 0.0);
  EXPECT_NE(k2, k3);
  EXPECT_LT(std::abs(k2 - k3), 0.25 * k3);
  // k1 (logp - ref, signed) is its own number.
  EXPECT_NE(k1, k2);
  EXPECT_NE(k1, k3);
}

TEST(LoopVariants, KlInTheRewardIsSubtractedBeforeTheAdvantages) {
  const auto base = with(kSpread, {"loss.beta=0.04", "train.steps=2"});
  const Outputs in_loss = train("kl_loss", base);
  const Outputs in_reward = train("kl_reward", with(base, {"loss.kl_in=reward"}));
  EXPECT_FALSE(in_loss.metrics[1].contains("reward/kl_penalty"));
  ASSERT_TRUE(in_reward.metrics[1].contains("reward/kl_penalty"));
  // Step 1: the reference is the policy (rollout vs teacher-forced log-probs
  // differ by float rounding only: measured 1.8e-14).
  EXPECT_NEAR(in_reward.metrics[0]["reward/kl_penalty"].get<double>(), 0.0, 1e-9);
  // k3 has no gradient at the reference: both runs hold the same policy at
  // step 2, sample the same completions, and differ by the penalty alone.
  const auto a = step_samples(in_loss, 2), b = step_samples(in_reward, 2);
  ASSERT_EQ(a.size(), 16u);
  ASSERT_EQ(b.size(), 16u);
  double pen_sum = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i]["completion"], b[i]["completion"]) << i;
    const double pen = a[i]["reward"].get<double>() - b[i]["reward"].get<double>();
    EXPECT_GE(pen, -1e-12) << "k3's penalty is >= 0";
    pen_sum += pen;
  }
  const double metric = in_reward.metrics[1]["reward/kl_penalty"].get<double>();
  EXPECT_GT(metric, 0.0);
  EXPECT_NEAR(pen_sum / 16, metric, 1e-9);
}

TEST(LoopVariants, OverlongSoftShapesRewardsAndMaskDropsTruncatedTokens) {
  const std::vector<std::string> cap = {"loss.max_completion_length=12", "loss.overlong_buffer=8",
                                        "train.steps=1"};
  const Outputs none = train("ol_none", cap);
  const Outputs soft = train("ol_soft", with(cap, {"loss.overlong=soft"}));
  const Outputs mask = train("ol_mask", with(cap, {"loss.overlong=mask"}));
  ASSERT_EQ(none.samples.size(), 16u);
  double tokens_all = 0, tokens_finished = 0;
  long truncated = 0;
  for (size_t i = 0; i < none.samples.size(); ++i) {
    const auto &n = none.samples[i], &s = soft.samples[i], &m = mask.samples[i];
    ASSERT_EQ(n["completion"], s["completion"]);
    ASSERT_EQ(n["completion"], m["completion"]);
    // DAPO eq. 13 with max 12, buffer 8: 0 up to 4 tokens, then (4 - L) / 8.
    const double L = n["tokens"].get<double>();
    const double want = L <= 4 ? 0.0 : L <= 12 ? (4.0 - L) / 8.0 : -1.0;
    EXPECT_NEAR(s["reward"].get<double>() - n["reward"].get<double>(), want, 1e-12) << "L " << L;
    EXPECT_EQ(m["reward"], n["reward"]) << "mask does not touch the reward";
    tokens_all += L;
    const bool cut = n["finish_reason"].get<std::string>() == "length";
    truncated += cut;
    if (!cut) tokens_finished += L;
  }
  ASSERT_GT(truncated, 0);
  ASSERT_LT(truncated, 16);
  EXPECT_EQ(none.metrics[0]["loss/num_tokens"].get<double>(), tokens_all);
  EXPECT_EQ(mask.metrics[0]["loss/num_tokens"].get<double>(), tokens_finished);
}

TEST(LoopVariants, CommandRewardServedByTwoProcessesScoresEveryCompletion) {
  // The worker: reward = (completion length mod 5) / 4, and a log of which
  // process started and which served each call.
  const std::string script = (scratch() / "len_reward.py").string();
  const std::string log = (scratch() / "workers.log").string();
  std::ofstream(script)
      << "import json, os, sys\n"
      << "log = open(" << json(log).dump() << ", 'a')\n"
      << "log.write('start %d\\n' % os.getpid()); log.flush()\n"
      << "for line in sys.stdin:\n"
      << "    s = json.loads(line)\n"
      << "    log.write('serve %d\\n' % os.getpid()); log.flush()\n"
      << "    print(json.dumps({'id': s['id'], 'reward': (len(s['completion']) % 5) / 4}), "
         "flush=True)\n";
  const Outputs r = train("cmd", {"rewards.judge={type: command, command: \"python3 -u " + script +
                                      "\", processes: 2, weight: 1.0}",
                                  "rewards.threads=2", "train.steps=2", "eval.every=0"});
  ASSERT_EQ(r.samples.size(), 32u);
  double mean = 0;
  for (const auto& s : r.samples) {
    // The command scored the completion samples.jsonl logs, as generated.
    const std::string seen = s["completion"].get<std::string>();
    const double want = static_cast<double>(seen.size() % 5) / 4.0;
    EXPECT_EQ(s["components"]["judge"].get<double>(), want) << s["completion"];
    const std::string why = s.value("reason", "");
    for (const char* failure : {"timeout", "crash", "bad reply", "disabled"})
      EXPECT_EQ(why.find(failure), std::string::npos) << why;
  }
  for (const auto& m : r.metrics) mean += m["reward/judge"].get<double>();
  EXPECT_GT(mean, 0.0);
  std::ifstream in(log);
  std::set<std::string> started;
  long served = 0;
  for (std::string what, pid; in >> what >> pid;) {
    if (what == "start") started.insert(pid);
    served += what == "serve";
  }
  EXPECT_EQ(started.size(), 2u) << "processes: 2 must start two workers";
  EXPECT_EQ(served, 32) << "every completion scored once, by some worker";
}

}  // namespace
