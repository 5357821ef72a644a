// End-to-end tests of the GRPO loop on a tiny random policy: outputs, exact
// resume, fallback past a truncated checkpoint, and early recipe errors.
#include "trainer/grpo_trainer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/comm.h"
#include "core/config.h"
#include "core/error.h"
#include "data/char_tokenizer.h"
#include "model/model.h"
#include "trainer/checkpoint.h"
#include "trainer/policy_file.h"
#include "trainer/pretrain.h"
#include "trainer/run_dir.h"
#include "loop_scratch.h"
#include "tiny_run.h"

using namespace zerorl;
namespace fs = std::filesystem;

namespace {

ZR_LOOP_SCRATCH("trainer")

TrainResult train(const std::string& text, const std::vector<std::string>& overrides = {},
                  const std::string& resume = "") {
  Recipe r = Recipe::from_string(text, "test.yaml");
  r.apply_overrides(overrides);
  auto comm = make_comm("single");
  return run_train(r, *comm, resume);
}

using test::final_hash;
using test::lines_without_time;

}  // namespace

TEST(GrpoTrainer, ShortRunWritesEveryOutputFile) {
  auto res = train(recipe_text("outputs"), {"train.steps=2", "eval.every=1"});
  fs::path d = res.run_dir;
  for (auto f :
       {"recipe.resolved.yaml", "metrics.jsonl", "samples.jsonl", "eval.jsonl", "summary.json"})
    EXPECT_TRUE(fs::exists(d / f)) << f;
  auto metrics = lines_without_time((d / "metrics.jsonl").string());
  ASSERT_EQ(metrics.size(), 2u);
  auto m = nlohmann::json::parse(metrics[1]);
  EXPECT_EQ(m["step"], 2);
  for (auto k :
       {"reward/mean", "reward/std", "reward/accuracy", "reward/format", "loss/kl", "loss/entropy",
        "loss/clip_frac_low", "loss/clip_frac_high", "optim/grad_norm", "optim/lr",
        "response/length_mean", "response/truncated_rate", "advantage/zero_spread_frac"})
    EXPECT_TRUE(m.contains(k)) << k << " missing from " << metrics[1];
  // eval before training and after each step
  EXPECT_EQ(lines_without_time((d / "eval.jsonl").string()).size(), 3u);
  auto samples = lines_without_time((d / "samples.jsonl").string());
  ASSERT_FALSE(samples.empty());
  auto s = nlohmann::json::parse(samples[0]);
  EXPECT_TRUE(s.contains("completion") && s.contains("prompt") && s.contains("reward"));
  std::ifstream sj((d / "summary.json").string());
  auto summary = nlohmann::json::parse(sj);
  EXPECT_EQ(summary["steps"], 2);
  EXPECT_TRUE(summary["base"].contains("pass_at_1"));
  EXPECT_TRUE(summary["final"].contains("greedy_accuracy"));
  EXPECT_TRUE(summary["final"].contains("worked_rate"));
  EXPECT_FALSE(fs::is_empty(d / "plots"));
  EXPECT_EQ(verify_checkpoint(
                checkpoint_rank_file(checkpoint_step_dir((d / "checkpoints").string(), 2), 0)),
            "");
  // The recipe written is the resolved one and parses back.
  Recipe back = Recipe::from_file((d / "recipe.resolved.yaml").string());
  EXPECT_EQ(back.section("train").get<long>("steps"), 2);
}

TEST(GrpoTrainer, ResumeContinuesBitIdentically) {
  auto straight = train(recipe_text("straight"));
  auto first = train(recipe_text("resumed"), {"train.steps=3"});
  auto second = train(recipe_text("resumed"), {}, "auto");
  EXPECT_EQ(second.steps_done, 6);
  EXPECT_EQ(final_hash(straight.run_dir, 6), final_hash(second.run_dir, 6));
  auto a = lines_without_time(straight.run_dir + "/metrics.jsonl");
  auto b = lines_without_time(second.run_dir + "/metrics.jsonl");
  ASSERT_EQ(a.size(), 6u);
  EXPECT_EQ(a, b);
}

TEST(GrpoTrainer, TruncatedNewestCheckpointIsSkipped) {
  auto run = train(recipe_text("trunc"), {"train.steps=3"});
  auto before = lines_without_time(run.run_dir + "/metrics.jsonl");
  std::string newest =
      checkpoint_rank_file(checkpoint_step_dir(run.run_dir + "/checkpoints", 3), 0);
  fs::resize_file(newest, fs::file_size(newest) / 2);
  auto resumed = train(recipe_text("trunc"), {"train.steps=3"}, "auto");
  // Resumed from step 2 and recomputed step 3 exactly.
  auto after = lines_without_time(resumed.run_dir + "/metrics.jsonl");
  EXPECT_EQ(before, after);
  EXPECT_EQ(verify_checkpoint(newest), "");  // rewritten whole
}

TEST(GrpoTrainer, TypoInRecipeNamesKeyAndLine) {
  std::string text = recipe_text("typo", "trian: {steps: 3}\n");
  try {
    train(text);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("'trian'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("test.yaml:"), std::string::npos) << msg;
  }
  try {
    train(recipe_text("typo2"), {"loss.bta=0.1"});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("loss.bta"), std::string::npos) << e.what();
  }
}

TEST(GrpoTrainer, MissingDatasetFailsBeforeAnyCompute) {
  std::string text = recipe_text("nodata");
  text.replace(text.find("  source: task"), std::string("  source: task").size(),
               "  source: jsonl\n  path: /nonexistent/train.jsonl");
  auto t0 = std::chrono::steady_clock::now();
  try {
    train(text);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/train.jsonl"), std::string::npos)
        << e.what();
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
  EXPECT_FALSE(fs::exists(scratch() / "runs" / "nodata" / "checkpoints"));
}

// The shipped recipes parse, every key in them is read, and one step runs
// (sizes and the policy overridden to stay tiny and on the CPU).
TEST(GrpoTrainer, ShippedRecipesRunOneStep) {
  const std::string dir = (scratch() / "runs").string();
  const std::vector<std::string> small = {"policy.init=" + tiny_policy(),
                                          "policy.device=cpu",
                                          "run.dir=" + dir,
                                          "train.steps=1",
                                          "train.prompts_per_step=2",
                                          "train.group_size=2",
                                          "rollout.sampling.max_new_tokens=8",
                                          "rollout.num_slots=4",
                                          "eval.every=0",
                                          "data.train_size=50",
                                          "data.test_size=4",
                                          "checkpoint.every=0",
                                          "reward_threads=1"};
  for (auto name : {"r1zero-tiny", "r1zero-countdown"}) {
    Recipe r = Recipe::from_file(std::string(ZR_SOURCE_DIR) + "/recipes/" + name + ".yaml");
    r.apply_overrides(small);
    auto comm = make_comm("single");
    auto res = run_train(r, *comm);
    EXPECT_EQ(res.steps_done, 1) << name;
  }
}

TEST(Pretrain, ShippedBaseRecipeRunsAndWritesALoadablePolicy) {
  Recipe r = Recipe::from_file(std::string(ZR_SOURCE_DIR) + "/recipes/base-tiny.yaml");
  r.apply_overrides({"run.dir=" + (scratch() / "runs").string(), "pretrain.steps=2",
                     "pretrain.batch_size=2", "pretrain.seq_len=16", "model.num_hidden_layers=1"});
  auto comm = make_comm("single");
  auto res = run_pretrain(r, *comm);
  EXPECT_EQ(res.steps, 2);
  EXPECT_TRUE(std::isfinite(res.final_loss));
  // Uniform over 104 ids is ln(104) = 4.64 nats: a fresh model starts near it.
  EXPECT_LT(res.final_loss, 6.0);
  Policy p = load_policy(res.policy_path);
  EXPECT_EQ(p.tokenizer->kind(), "char");
  EXPECT_EQ(p.model->config().num_layers, 1);
}
