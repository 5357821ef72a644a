// read_train_recipe(): the config tree of a GRPO recipe (trainer/train_recipe.h).
#include "trainer/train_recipe.h"

#include <gtest/gtest.h>

#include "core/config.h"
#include "core/error.h"

namespace zerorl {
namespace {

// A small but complete GRPO recipe; `extra` lines are appended verbatim.
std::string recipe_text(const std::string& extra = "") {
  return "run: {name: t, dir: /tmp/none}\n"
         "policy: {init: p.h5}\n"
         "data:\n"
         "  source: task\n"
         "  task: {name: addition, max_digits: 2}\n"
         "rollout:\n"
         "  num_slots: 8\n"
         "  sampling: {temperature: 0.9, max_new_tokens: 40, stop_strings: [\"</answer>\"]}\n"
         "rewards:\n"
         "  accuracy: {type: math}\n"
         "train: {steps: 4, prompts_per_step: 4, group_size: 2}\n" +
         extra;
}

std::string error_of(const std::string& text) {
  Recipe r = Recipe::from_string(text, "r.yaml");
  try {
    read_train_recipe(r);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(TrainRecipe, ReadsEverySectionIntoItsConfig) {
  Recipe ok = Recipe::from_string(
      recipe_text("checkpoint: {every: 2}\nlog: {level: warn}\neval: {seed: 7}\n"), "r.yaml");
  ok.apply_overrides({"rewards.threads=3", "train.old_logprobs=recompute"});
  const TrainRecipe c = read_train_recipe(ok);
  EXPECT_EQ(c.run.path(), "/tmp/none/t");
  EXPECT_EQ(c.rollout.num_slots, 8);
  EXPECT_EQ(c.rewards.num_threads(), 3);
  EXPECT_EQ(c.checkpoint.every, 2);
  EXPECT_EQ(c.checkpoint.keep_last, 3);
  EXPECT_EQ(c.log.level, "warn");
  EXPECT_EQ(c.train.old_logprobs, TrainConfig::OldLogprobs::kRecompute);
  EXPECT_FALSE(c.train.old_logprobs_from_rollout());
  // The evaluation samples as the rollout does, at its own temperature,
  // top-p and seed; max_new_tokens 0 is the rollout's.
  EXPECT_DOUBLE_EQ(c.eval.sampling.temperature, 0.6);
  EXPECT_DOUBLE_EQ(c.eval.sampling.top_p, 0.95);
  EXPECT_EQ(c.eval.sampling.seed, 7u);
  EXPECT_EQ(c.eval.sampling.max_new_tokens, 40);
  EXPECT_EQ(c.eval.sampling.stop_strings, std::vector<std::string>{"</answer>"});
  // The resolved recipe holds every default, floats as written.
  EXPECT_NE(c.resolved_yaml.find("threads: 3"), std::string::npos) << c.resolved_yaml;
  EXPECT_NE(c.resolved_yaml.find("top_p: 0.95"), std::string::npos) << c.resolved_yaml;
  EXPECT_EQ(c.resolved_yaml.find("0.94999"), std::string::npos) << c.resolved_yaml;
}

TEST(TrainRecipe, OldLogprobsAutoRecomputesOnlyWhenABatchIsUpdatedTwice) {
  TrainConfig t;
  EXPECT_TRUE(t.old_logprobs_from_rollout());
  t.minibatches = 2;
  EXPECT_FALSE(t.old_logprobs_from_rollout());
  t.minibatches = 1;
  t.epochs = 2;
  EXPECT_FALSE(t.old_logprobs_from_rollout());
  t.old_logprobs = TrainConfig::OldLogprobs::kRollout;
  EXPECT_TRUE(t.old_logprobs_from_rollout());
}

TEST(TrainRecipe, TopLevelRewardThreadsIsRefusedNamingTheNewKey) {
  const std::string msg = error_of(recipe_text("reward_threads: 2\n"));
  EXPECT_NE(msg.find("r.yaml:12"), std::string::npos) << msg;
  EXPECT_NE(msg.find("rewards.threads"), std::string::npos) << msg;
}

TEST(TrainRecipe, SamplingSeedIsRefusedInTraining) {
  Recipe r = Recipe::from_string(recipe_text(), "r.yaml");
  r.apply_overrides({"rollout.sampling.seed=5"});
  try {
    read_train_recipe(r);
    FAIL() << "rollout.sampling.seed accepted (train.seed would silently replace it)";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("rollout.sampling.seed"), std::string::npos) << msg;
    EXPECT_NE(msg.find("train.seed"), std::string::npos) << msg;
  }
}

TEST(TrainRecipe, AnAdditionTaskRefusesCountdownKeysByNameAndLine) {
  std::string text = recipe_text();
  text.replace(text.find("max_digits: 2"), 13, "max_digits: 2, num_count: 5");
  const std::string msg = error_of(text);
  EXPECT_NE(msg.find("data.task.num_count"), std::string::npos) << msg;
  EXPECT_NE(msg.find("r.yaml:5"), std::string::npos) << msg;

  std::string countdown = recipe_text();
  countdown.replace(countdown.find("name: addition, max_digits: 2"), 29,
                    "name: countdown, num_count: 3, min_digits: 2");
  const std::string msg2 = error_of(countdown);
  EXPECT_NE(msg2.find("data.task.min_digits"), std::string::npos) << msg2;

  std::string own = recipe_text();
  own.replace(own.find("name: addition, max_digits: 2"), 29, "name: countdown, num_count: 3");
  EXPECT_EQ(error_of(own), "");
}

}  // namespace
}  // namespace zerorl
