#include "trainer/train_recipe.h"

#include "core/config.h"
#include "core/log.h"

namespace zerorl {

TrainRecipe read_train_recipe(Recipe& recipe) {
  // The order of the reads is the order of the defaults in the resolved
  // recipe (each default is appended to its section when first read).
  const ConfigNode root = recipe.root();
  ZR_CHECK(!root.has("reward_threads"), root.where("reward_threads"),
           ": 'reward_threads' is now 'rewards.threads' (the reward pipeline's own key, "
           "beside rewards.max_error_rate): write rewards: {threads: N, ...}");
  TrainRecipe c;
  c.run = RunConfig::from(recipe.section("run"));
  c.policy = PolicyConfig::from(recipe.section("policy"));
  c.prompt_template = data::TemplateConfig::from(recipe.section("template"));
  c.data = data::DatasetConfig::from(recipe.section("data"));
  c.rollout = rollout::RolloutConfig::from(recipe.section("rollout"));
  c.parallel = ParallelConfig::from(recipe.section("parallel"));
  c.disaggregated = DisaggregatedConfig::from(recipe.section("rollout"), c.parallel);
  c.rewards = rewards::build_reward_pipeline(recipe.section("rewards"));
  c.advantage = AdvantageConfig::from(recipe.section("advantage"));
  c.loss = LossConfig::from(recipe.section("loss"));
  c.train = TrainConfig::from(recipe.section("train"));
  // optimizer.total_steps counts optimizer updates: the cosine schedule's
  // default is every update of the run.
  c.optimizer = OptimizerConfig::from(recipe.section("optimizer"),
                                      c.train.steps * c.train.epochs * c.train.minibatches);
  c.optimizer.zero = static_cast<int>(c.train.zero);
  c.optimizer.overlap_grad_sync = c.train.overlap_grad_sync;
  c.eval = EvalConfig::from(recipe.section("eval"), c.rollout.sampling);
  c.checkpoint = CheckpointConfig::from(recipe.section("checkpoint"));
  c.log = LogConfig::from(recipe.section("log"));
  c.logging = LoggingConfig::from(recipe.section("logging"));
  recipe.check_all_read();

  // Minibatches are cut by each group's place in the global batch, so only
  // the global count must split evenly (the world size is checked at build).
  ZR_CHECK(c.train.prompts_per_step % c.train.minibatches == 0, "train.minibatches (",
           c.train.minibatches, ") must divide train.prompts_per_step (", c.train.prompts_per_step,
           ")");
  if (c.loss.aggregation == LossConfig::Aggregation::kDrGrpo ||
      c.loss.overlong == LossConfig::Overlong::kSoft)
    if (c.loss.max_completion_length == 0)
      c.loss.max_completion_length = c.rollout.sampling.max_new_tokens;
  c.resolved_yaml = recipe.dump();
  return c;
}

}  // namespace zerorl
