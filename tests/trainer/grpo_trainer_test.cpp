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
#include "trainer/eval_run.h"
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
        "response/length_mean", "response/truncated_rate", "advantage/zero_spread_frac",
        "reflection/rate", "reflection/markers_mean", "reflection/revision_rate",
        "reflection/accuracy_with", "reflection/accuracy_without"})
    EXPECT_TRUE(m.contains(k)) << k << " missing from " << metrics[1];
  // The reflection figures are shares (accuracies null when a side is empty).
  for (auto k : {"reflection/rate", "reflection/revision_rate", "reflection/accuracy_with",
                 "reflection/accuracy_without"})
    EXPECT_TRUE(m[k].is_null() || (m[k] >= 0.0 && m[k] <= 1.0)) << k << " = " << m[k];
  EXPECT_GE(m["reflection/markers_mean"], 0.0);
  // eval before training and after each step
  const auto evals = lines_without_time((d / "eval.jsonl").string());
  EXPECT_EQ(evals.size(), 3u);
  for (const auto& line : evals)
    for (auto k : {"reflection_rate", "reflection_markers_mean", "reflection_revision_rate",
                   "reflection_accuracy_with", "reflection_accuracy_without"})
      EXPECT_TRUE(nlohmann::json::parse(line).contains(k)) << k << " missing from " << line;
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

  // summary.json: the same as the uninterrupted run's (step-0 evaluation
  // included) but for the wall time, which sums both segments.
  auto summary = [](const std::string& dir) {
    std::ifstream in(dir + "/summary.json");
    return nlohmann::json::parse(in);
  };
  nlohmann::json want = summary(straight.run_dir), got = summary(second.run_dir);
  EXPECT_FALSE(got["base"].empty());
  EXPECT_GT(got["wall_seconds"].get<double>(), first.wall_seconds);
  want.erase("wall_seconds");
  got.erase("wall_seconds");
  EXPECT_EQ(want, got);
  // Each segment's recipe is kept: the first one (3 steps) as recipe.resolved.1.yaml.
  Recipe seg1 = Recipe::from_file(second.run_dir + "/recipe.resolved.1.yaml");
  EXPECT_EQ(seg1.section("train").get<long>("steps"), 3);

  // A resume with nothing left to do changes nothing.
  // The files that differ between two snapshots (names only: HDF5 bytes make
  // unreadable failure messages).
  auto changed = [](const std::map<std::string, std::string>& a,
                    const std::map<std::string, std::string>& b) {
    std::string out;
    for (const auto& [k, v] : a)
      if (!b.count(k) || b.at(k) != v) out += " " + k;
    for (const auto& [k, v] : b)
      if (!a.count(k)) out += " " + k;
    return out;
  };
  auto snapshot = [&] {
    std::map<std::string, std::string> files;
    for (const auto& e : fs::recursive_directory_iterator(second.run_dir)) {
      if (!e.is_regular_file()) continue;
      std::ifstream in(e.path(), std::ios::binary);
      std::ostringstream ss;
      ss << in.rdbuf();
      files[e.path().string()] = ss.str();
    }
    return files;
  };
  const auto before = snapshot();
  auto noop = train(recipe_text("resumed"), {}, "auto");
  EXPECT_EQ(noop.steps_done, 6);
  EXPECT_EQ(changed(before, snapshot()), "");

  // A changed recipe is refused unless the keys may change; the error names them.
  try {
    train(recipe_text("resumed"), {"train.steps=8", "optimizer.lr=0.01", "loss.beta=0.1"}, "auto");
    ADD_FAILURE() << "a resume with a changed learning rate was accepted";
  } catch (const Error& e) {
    std::string w = e.what();
    // train.steps may change: not among the keys named.
    EXPECT_NE(w.find("loss.beta, optimizer.lr differ"), std::string::npos) << w;
  }
  EXPECT_EQ(changed(before, snapshot()), "");
}

// The same command again without --resume keeps the first run's
// checkpoints and outputs (and says how to go on); --overwrite starts again.
TEST(GrpoTrainer, RerunKeepsItsCheckpoints) {
  auto first = train(recipe_text("rerun"), {"train.steps=2"});
  const std::string ckpts = first.run_dir + "/checkpoints";
  const auto steps = list_checkpoint_steps(ckpts);
  ASSERT_EQ(steps, (std::vector<int64_t>{1, 2}));
  const std::string hash = final_hash(first.run_dir, 2);
  const auto metrics = lines_without_time(first.run_dir + "/metrics.jsonl");
  try {
    train(recipe_text("rerun"), {"train.steps=2"});
    ADD_FAILURE() << "the rerun did not refuse";
  } catch (const Error& e) {
    std::string w = e.what();
    EXPECT_NE(w.find("--resume auto"), std::string::npos) << w;
    EXPECT_NE(w.find("--overwrite"), std::string::npos) << w;
  }
  EXPECT_EQ(list_checkpoint_steps(ckpts), steps);
  EXPECT_EQ(final_hash(first.run_dir, 2), hash);
  EXPECT_EQ(lines_without_time(first.run_dir + "/metrics.jsonl"), metrics);
  // --overwrite: a fresh run of one step; the step-2 checkpoint is gone.
  Recipe r = Recipe::from_string(recipe_text("rerun"), "test.yaml");
  r.apply_overrides({"train.steps=1"});
  auto comm = make_comm("single");
  run_train(r, *comm, "", true);
  EXPECT_EQ(list_checkpoint_steps(ckpts), std::vector<int64_t>{1});
  EXPECT_EQ(lines_without_time(first.run_dir + "/metrics.jsonl").size(), 1u);
}

// The tiny recipe with a command reward that dies at once on every sample.
std::string dead_command_recipe(const std::string& name) {
  std::string text = recipe_text(name);
  const std::string from = "rewards:\n  threads: 1\n  accuracy: {type: math}\n";
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos);
  return text.insert(at + from.size(), "  judge: {type: command, command: \"exit 3\"}\n");
}

// A reward that cannot work stops the run within one step, naming itself,
// the limit and its last error; the step's error rate is logged first.
TEST(GrpoTrainer, DeadCommandRewardStopsTheRunInOneStep) {
  ::testing::internal::CaptureStderr();
  try {
    train(dead_command_recipe("dead_reward"), {"eval.every=0"});
    ADD_FAILURE() << "a reward that fails on every sample did not stop the run";
  } catch (const Error& e) {
    std::string w = e.what();
    EXPECT_NE(w.find("reward 'judge'"), std::string::npos) << w;
    EXPECT_NE(w.find("step 1"), std::string::npos) << w;
    EXPECT_NE(w.find("rewards.max_error_rate"), std::string::npos) << w;
    EXPECT_NE(w.find("command reward:"), std::string::npos) << w;  // its last error
  }
  ::testing::internal::GetCapturedStderr();
  const std::string dir = (scratch() / "runs" / "dead_reward").string();
  auto metrics = test::read_jsonl(dir + "/metrics.jsonl");
  ASSERT_EQ(metrics.size(), 1u);
  EXPECT_EQ(metrics[0]["reward/judge/error_rate"], 1.0);
  EXPECT_EQ(metrics[0]["reward/accuracy/error_rate"], 0.0);
  EXPECT_TRUE(list_checkpoint_steps(dir + "/checkpoints").empty());
}

// rewards.max_error_rate: 1 lets such a run go on (the reward scores 0).
TEST(GrpoTrainer, MaxErrorRateOneKeepsGoing) {
  ::testing::internal::CaptureStderr();
  auto res = train(dead_command_recipe("dead_tolerated"),
                   {"eval.every=0", "train.steps=1", "rewards.max_error_rate=1"});
  ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(res.steps_done, 1);
  EXPECT_EQ(res.last_metrics.at("reward/judge/error_rate"), 1.0);
}

// The tiny random policy never earns the format reward: a warning names the
// reward and the likely cause, once (not at each of the steps).
TEST(GrpoTrainer, FormatRewardZeroOnAWholeStepWarns) {
  ::testing::internal::CaptureStderr();
  train(recipe_text("format_zero"), {"eval.every=0", "train.steps=2"});
  const std::string err = ::testing::internal::GetCapturedStderr();
  const std::string what = "the format reward 'format' is 0 on every sample";
  const size_t at = err.find(what);
  EXPECT_NE(at, std::string::npos) << err;
  EXPECT_NE(err.find("check that the template and the reward agree"), std::string::npos) << err;
  EXPECT_EQ(err.find(what, at + 1), std::string::npos) << "warned at every step: " << err;
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

// parallel.expert (issue 14): a bad value, one that does not divide the
// policy's 4 routed experts, or one that does not divide the world size each
// stop the run at start with the key and its line.
TEST(GrpoTrainer, ExpertParallelErrorsNameKeyAndLine) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"parallel: {expert: 0}\n", "must be >= 1"},
      {"parallel: {expert: 3}\n", "n_routed_experts (4)"},
      {"parallel: {expert: 2}\n", "divide the world size 1"}};
  for (const auto& [yaml, want] : cases) {
    try {
      train(recipe_text("ep_bad", yaml));
      ADD_FAILURE() << "expected an error for " << yaml;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("parallel.expert"), std::string::npos) << msg;
      EXPECT_NE(msg.find("test.yaml:"), std::string::npos) << msg;
      EXPECT_NE(msg.find(want), std::string::npos) << msg;
    }
  }
  EXPECT_FALSE(fs::exists(scratch() / "runs" / "ep_bad" / "metrics.jsonl"));
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

// A prompt too long for max_new_tokens within the model's positions stops the
// run at start, naming the prompt, before any rollout (issue 13 item 7).
TEST(GrpoTrainer, PromptTooLongForTheContextFailsAtStart) {
  const int64_t max_pos = load_policy(tiny_policy()).model->config().max_position;
  try {
    train(recipe_text("toolong"),
          {"rollout.sampling.max_new_tokens=" + std::to_string(max_pos - 4)});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("the longest training prompt (addition/train/"), std::string::npos) << what;
    EXPECT_NE(what.find("max_position_embeddings (" + std::to_string(max_pos) + ")"),
              std::string::npos)
        << what;
  }
  EXPECT_FALSE(fs::exists(scratch() / "runs" / "toolong" / "metrics.jsonl"));
}

// `zerorl eval` runs the same start-time check on its test prompts (the
// function training runs: rollout::check_prompts_fit), before any rollout.
TEST(GrpoTrainer, EvalOfAPromptTooLongForTheContextFailsAtStart) {
  const int64_t max_pos = load_policy(tiny_policy()).model->config().max_position;
  Recipe r = Recipe::from_string(recipe_text("toolong_eval"), "test.yaml");
  r.apply_overrides({"eval.max_new_tokens=" + std::to_string(max_pos - 4)});
  auto comm = make_comm("single");
  try {
    run_eval(r, *comm, "");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("the longest test prompt (addition/test/"), std::string::npos) << what;
    EXPECT_NE(what.find("max_position_embeddings (" + std::to_string(max_pos) + ")"),
              std::string::npos)
        << what;
  }
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
                                          "rewards.threads=1"};
  for (auto name : {"r1zero-tiny", "r1zero-countdown"}) {
    Recipe r = Recipe::from_file(std::string(ZR_SOURCE_DIR) + "/recipes/" + name + ".yaml");
    r.apply_overrides(small);
    auto comm = make_comm("single");
    auto res = run_train(r, *comm);
    EXPECT_EQ(res.steps_done, 1) << name;
  }
}

TEST(Pretrain, ShippedBaseRecipeLearnsAndWritesALoadablePolicy) {
  // 30 short steps of the shipped recipe on one layer (~2 s).  Uniform over
  // the 104 ids is ln(104) = 4.64 nats, where a fresh model starts; the
  // measured run ends at 2.48.  An untrained model (no update, lr 0, a
  // detached loss) stays near 4.64 and fails the last two checks.
  Recipe r = Recipe::from_file(std::string(ZR_SOURCE_DIR) + "/recipes/base-tiny.yaml");
  r.apply_overrides({"run.dir=" + (scratch() / "runs").string(), "pretrain.steps=30",
                     "pretrain.batch_size=4", "pretrain.seq_len=64", "pretrain.log_every=1",
                     "pretrain.optimizer.warmup_steps=3", "pretrain.optimizer.total_steps=30",
                     "model.num_hidden_layers=1"});
  auto comm = make_comm("single");
  auto res = run_pretrain(r, *comm);
  EXPECT_EQ(res.steps, 30);
  const auto m = test::read_jsonl((scratch() / "runs" / "base-tiny" / "metrics.jsonl").string());
  ASSERT_EQ(m.size(), 30u);
  const double first = m.front()["pretrain/nll"].get<double>();
  EXPECT_NEAR(first, std::log(104.0), 0.1) << "a fresh model starts near uniform";
  EXPECT_DOUBLE_EQ(m.back()["pretrain/nll"].get<double>(), res.final_loss);
  EXPECT_LT(res.final_loss, 3.0);
  EXPECT_LT(res.final_loss, first - 1.5);
  Policy p = load_policy(res.policy_path);
  EXPECT_EQ(p.tokenizer->kind(), "char");
  EXPECT_EQ(p.model->config().num_layers, 1);
}
