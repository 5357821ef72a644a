// Pretraining of a base model with the language-modelling loss: what
// `zerorl pretrain RECIPE` runs to make the tiny base that the R1-Zero
// reproduction starts from.
//
// Recipe sections read:
//   run:      {name, dir}                     -> <dir>/<name>/ (metrics.jsonl, recipe)
//   seed:     global seed (model init, corpus)
//   model:    ModelConfig::from_recipe (model/config.h); vocab_size is set
//             from the tokenizer when left out
//   corpus:   data::CorpusConfig (data/corpus.h)
//   pretrain: steps, batch_size (global sequences per step), seq_len,
//             log_every, output (policy file path, relative to the run dir
//             unless absolute), optimizer: OptimizerConfig (trainer/optimizer.h)
//
// Data: documents 0, 1, 2, ... of the corpus, each followed by <eos>, packed
// back to back into rows of seq_len + 1 tokens.  Every rank builds the same
// global batch and trains on its contiguous share of rows; the loss is the
// mean token NLL over the global batch (gradients summed across ranks), so
// the result does not depend on the number of ranks.
//
// Collective: every rank calls run_pretrain.  Errors throw zerorl::Error.
#pragma once

#include <string>
#include <vector>

namespace zerorl {

class Recipe;
class Comm;

struct PretrainResult {
  std::string policy_path;  // the written policy file
  double final_loss = 0;    // mean NLL of the last step
  double wall_seconds = 0;
  long steps = 0;
};

PretrainResult run_pretrain(Recipe& recipe, Comm& comm);

}  // namespace zerorl
