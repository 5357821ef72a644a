// Update options of the GRPO loop, run for real on the tiny policy: gradient
// accumulation over micro-batches, the reference reset every N steps (and
// across a resume), and beta = 0 keeping no reference model.
#include <gtest/gtest.h>

#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "core/comm.h"
#include "core/config.h"
#include "loop_scratch.h"
#include "tiny_run.h"
#include "trainer/checkpoint.h"
#include "trainer/grpo_trainer.h"
#include "trainer/run_dir.h"
#include "trainer/policy_file.h"

using namespace zerorl;
namespace fs = std::filesystem;

namespace {

ZR_LOOP_SCRATCH("loopopt")

TrainResult train(const std::string& name, std::vector<std::string> overrides,
                  const std::string& resume = "") {
  Recipe r = Recipe::from_string(recipe_text(name), "test.yaml");
  overrides.push_back("eval.every=0");
  r.apply_overrides(overrides);
  auto comm = make_comm("single");
  return run_train(r, *comm, resume);
}

std::map<std::string, at::Tensor> final_weights(const TrainResult& r, long step) {
  Checkpoint c = load_checkpoint(test::rank_checkpoint(r.run_dir, step));
  return {c.weights.begin(), c.weights.end()};
}

}  // namespace

// micro_batch splits each minibatch's forward/backward (longest rows first,
// each forward cut to its longest row); the gradients accumulate to the same
// update.  Run once with the old log-probs from the rollout (mu = 1) and
// once recomputed (2 epochs x 2 minibatches, also chunked).  Overlong shaping
// gives the random policy's groups distinct rewards, so gradients are not 0.
void expect_micro_batches_match(const std::string& name, std::vector<std::string> o) {
  for (std::string x : {"train.steps=3", "loss.overlong=soft", "loss.max_completion_length=12",
                        "loss.overlong_buffer=8"})
    o.push_back(x);
  auto whole = train(name + "_whole", o);
  o.push_back("train.micro_batch=3");  // 16 (or 8) completions per minibatch: chunks of 3
  auto parts = train(name + "_parts", o);
  auto a = final_weights(whole, 3), b = final_weights(parts, 3);
  Policy init = load_policy(tiny_policy());
  double diff = 0, moved = 0;
  for (auto& p : init.model->named_parameters(true)) {  // trained weights, not the MoE biases
    diff = std::max(diff, (a.at(p.key()) - b.at(p.key())).abs().max().item<double>());
    moved = std::max(moved, (a.at(p.key()) - p.value()).abs().max().item<double>());
  }
  // fp32 gradients summed per micro-batch instead of in one backward (and
  // forwards of other shapes) differ in the last bits; Adam turns that into
  // weight differences of ~1e-6 here, far below the ~lr = 1e-3 that each
  // update moves the weights by.
  std::cout << name << ": max |w(micro_batch 3) - w(whole)| = " << diff << ", moved " << moved
            << "\n";
  EXPECT_LT(diff, 1e-5) << name << ": micro-batching changed the update";
  EXPECT_GT(moved, 1e-4) << "training did not move the weights: the comparison would be vacuous";
  auto ma = test::read_jsonl(whole.run_dir + "/metrics.jsonl");
  auto mb = test::read_jsonl(parts.run_dir + "/metrics.jsonl");
  ASSERT_EQ(ma.size(), mb.size());
  for (size_t s = 0; s < ma.size(); ++s) {
    // Token counts add up exactly; the loss is summed over micro-batches.
    EXPECT_EQ(ma[s]["loss/num_tokens"], mb[s]["loss/num_tokens"]);
    EXPECT_NEAR(ma[s]["loss/loss"].get<double>(), mb[s]["loss/loss"].get<double>(), 1e-6);
  }
}

TEST(LoopOptions, MicroBatchesAccumulateToTheSameUpdate) {
  expect_micro_batches_match("mb_rollout_old", {});
  expect_micro_batches_match("mb_recomputed_old", {"train.epochs=2", "train.minibatches=2"});
}

// With ref_reset_every = 2 the reference is the policy again at the start of
// steps 3 and 5 (1-based), so the KL of their first pass is exactly 0, while
// steps in between see a policy that has moved away from it.  A run resumed
// at the reset step gives the same bits as a straight one.
TEST(LoopOptions, ReferenceResetsEveryNStepsAndAcrossResume) {
  const std::vector<std::string> o = {"train.steps=5", "train.ref_reset_every=2"};
  auto straight = train("reset_straight", o);
  auto m = test::read_jsonl(straight.run_dir + "/metrics.jsonl");
  ASSERT_EQ(m.size(), 5u);
  EXPECT_EQ(m[0]["loss/kl"].get<double>(), 0.0);  // step 1: reference = initial policy
  EXPECT_GT(m[1]["loss/kl"].get<double>(), 0.0);
  EXPECT_EQ(m[2]["loss/kl"].get<double>(), 0.0) << "no reset at step 3";
  EXPECT_GT(m[3]["loss/kl"].get<double>(), 0.0);
  EXPECT_EQ(m[4]["loss/kl"].get<double>(), 0.0) << "no reset at step 5";
  // Without resets the KL keeps growing.
  auto never = test::read_jsonl(train("reset_never", {"train.steps=3"}).run_dir + "/metrics.jsonl");
  EXPECT_GT(never[2]["loss/kl"].get<double>(), 0.0);

  train("reset_resumed", {"train.steps=2", "train.ref_reset_every=2"});
  auto resumed = train("reset_resumed", o, "auto");
  EXPECT_EQ(test::final_hash(straight.run_dir, 5), test::final_hash(resumed.run_dir, 5));
  EXPECT_EQ(test::lines_without_time(straight.run_dir + "/metrics.jsonl"),
            test::lines_without_time(resumed.run_dir + "/metrics.jsonl"));
}

// beta = 0 needs no reference: none is kept (checkpoints carry none) and no
// KL is reported; beta > 0 keeps one.
TEST(LoopOptions, BetaZeroKeepsNoReferenceModel) {
  auto zero = train("beta0", {"train.steps=1", "loss.beta=0"});
  auto pos = train("beta_pos", {"train.steps=1"});
  EXPECT_TRUE(load_checkpoint(test::rank_checkpoint(zero.run_dir, 1)).reference.empty());
  EXPECT_FALSE(load_checkpoint(test::rank_checkpoint(pos.run_dir, 1)).reference.empty());
  EXPECT_FALSE(zero.last_metrics.count("loss/kl"));
  EXPECT_TRUE(pos.last_metrics.count("loss/kl"));
}
