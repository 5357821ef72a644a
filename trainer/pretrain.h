// Pretraining of a base model with the language-modelling loss: what
// `zerorl pretrain RECIPE` runs to make the tiny base that the R1-Zero
// reproduction starts from.
//
// Recipe sections read (read_pretrain_recipe; every key with its meaning:
// docs/RECIPES.md):
//   run:      RunConfig {name, dir}           -> <dir>/<name>/ (metrics.jsonl, recipe)
//   model:    ModelConfig::from (model/config.h; model.seed seeds the
//             weights); vocab_size is set from the tokenizer when left out
//   corpus:   data::CorpusConfig (data/corpus.h; corpus.seed its order)
//   pretrain: steps, batch_size (global sequences per step), seq_len,
//             log_every, output (policy file path, relative to the run dir
//             unless absolute), device (cpu | cuda), dtype (fp32 | bf16: bf16
//             parameters with the Optimizer's fp32 masters and moments, as
//             policy.dtype; the policy file then holds bf16 weights),
//             optimizer: OptimizerConfig (trainer/optimizer.h)
//   comm:     CommConfig (core/comm_config.h), read once by the command
//
// Data: documents 0, 1, 2, ... of the corpus, each followed by <eos>, packed
// back to back into rows of seq_len + 1 tokens.  Every rank builds the same
// global batch and trains on its contiguous share of rows; the loss is the
// mean token NLL over the global batch (gradients summed across ranks), so
// the result does not depend on the number of ranks.
//
// Collective: every rank calls run_pretrain.  Errors throw zerorl::Error.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "data/corpus.h"
#include "model/config.h"
#include "trainer/optimizer.h"
#include "trainer/run_dir.h"

namespace zerorl {

class Recipe;
class Comm;

namespace data {
class Tokenizer;
}

// A pretraining recipe, read: every key, checked as far as the recipe alone
// allows, and Recipe::check_all_read() (an unknown key throws naming its
// line).  What depends on the world size is checked by run_pretrain.
struct PretrainRecipe {
  RunConfig run;
  data::CorpusConfig corpus;
  std::shared_ptr<data::Tokenizer> tokenizer;  // the task character tokenizer
  model::ModelConfig model;
  long steps = 0;
  long batch_size = 0;  // global sequences per step
  long seq_len = 0;
  long log_every = 50;
  std::string output = "base.h5";
  bool on_cuda = false;  // pretrain.device (checked against the process by run_pretrain)
  at::ScalarType dtype = at::kFloat;  // pretrain.dtype
  OptimizerConfig optimizer;
};

PretrainRecipe read_pretrain_recipe(Recipe& recipe);

struct PretrainResult {
  std::string policy_path;  // the written policy file
  double final_loss = 0;    // mean NLL of the last step
  double wall_seconds = 0;
  long steps = 0;
};

PretrainResult run_pretrain(Recipe& recipe, Comm& comm);

}  // namespace zerorl
