// A GRPO recipe, read: every section's config struct, the reward pipeline it
// names, and the resolved YAML.  The first of setup()'s three steps (read
// the recipe, build the run, resume or start; trainer/grpo_trainer.cpp), and
// what `zerorl eval` reads (trainer/eval_run.cpp), so the two cannot read one
// recipe differently.
//
//   run:        RunConfig (trainer/run_dir.h)       outputs under <dir>/<name>/
//   policy:     PolicyConfig (trainer/policy_file.h)
//   template:   data::TemplateConfig                data: data::DatasetConfig
//   rollout:    rollout::RolloutConfig (rollout/sampling.h); its mode and
//               max_staleness: DisaggregatedConfig (trainer/disaggregated.h),
//               which takes parallel.rollout_ranks from ParallelConfig
//   rewards:    rewards::build_reward_pipeline (rewards/pipeline.h; threads,
//               max_error_rate, clip and one entry per reward)
//   advantage:  AdvantageConfig                     loss: LossConfig
//   train:      TrainConfig (trainer/grpo_trainer.h)
//   optimizer:  OptimizerConfig                     eval: EvalConfig
//   checkpoint: CheckpointConfig (trainer/checkpoint.h)
//   log:        LogConfig                           logging: LoggingConfig
//   parallel:   ParallelConfig (core/process_grid.h), the section's only
//               reader: expert parallelism and rollout ranks
//   comm:       CommConfig (core/comm_config.h), read once by the command
//
// Contract: read_train_recipe() reads every key (defaults are written into
// the recipe, core/config.h), checks what needs more than one section
// (minibatches divide the batch), fills the defaults that follow from other
// sections (loss.max_completion_length, optimizer.total_steps), and ends
// with Recipe::check_all_read(): an unknown key, a key of another task or a
// top-level `reward_threads` (now rewards.threads) throws naming the key and
// its line.  Nothing is loaded or computed; what depends on the world size
// or the device is checked when the run is built.  Single-threaded.
#pragma once

#include <string>

#include "core/process_grid.h"
#include "data/dataset.h"
#include "data/template.h"
#include "rewards/pipeline.h"
#include "rollout/sampling.h"
#include "trainer/advantages.h"
#include "trainer/checkpoint.h"
#include "trainer/disaggregated.h"
#include "trainer/evaluate.h"
#include "trainer/grpo_loss.h"
#include "trainer/grpo_trainer.h"
#include "trainer/optimizer.h"
#include "trainer/policy_file.h"
#include "trainer/run_dir.h"

namespace zerorl {

class Recipe;

struct TrainRecipe {
  RunConfig run;
  PolicyConfig policy;
  data::TemplateConfig prompt_template;
  data::DatasetConfig data;
  rollout::RolloutConfig rollout;
  DisaggregatedConfig
      disaggregated;  // rollout.mode, rollout.max_staleness (+ parallel.rollout_ranks)
  rewards::RewardPipeline rewards;
  AdvantageConfig advantage;
  LossConfig loss;
  TrainConfig train;
  OptimizerConfig optimizer;
  EvalConfig eval;
  CheckpointConfig checkpoint;
  LogConfig log;
  LoggingConfig logging;
  ParallelConfig parallel;
  std::string resolved_yaml;  // Recipe::dump() once everything is read
};

TrainRecipe read_train_recipe(Recipe& recipe);

}  // namespace zerorl
