// `zerorl eval`: a recipe's evaluation (its `eval:` section on its test
// split, trainer/evaluate.h) of one policy, without training.
//
// The policy is, by `ckpt`:
//   ""                      the recipe's policy.init (the base model)
//   a checkpoint step folder (runs/<name>/checkpoints/step_<N>) or one of its
//                           rank files: policy.init's architecture and
//                           tokenizer with the checkpoint's weights, as a
//                           resume loads them
//   "auto"                  the newest checkpoint of the recipe's run that
//                           verifies (trainer/checkpoint.h)
//   a policy file or a Hugging Face folder (trainer/policy_file.h)
// Everything else comes from the recipe as `zerorl train` builds it
// (template, data, rewards, rollout.num_slots and sampling, policy.dtype,
// device and prepend_bos), so the figures of a checkpoint of step N equal
// the training run's eval.jsonl line of step N on the same world size.
// Sections only training reads (train, advantage, loss, optimizer,
// checkpoint, logging) are accepted and ignored; any other unknown key is an
// error.  Collective (problems are split over the ranks as in training).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "trainer/evaluate.h"

namespace zerorl {

class Recipe;
class Comm;

struct EvalRunResult {
  std::string policy;  // what was evaluated: the checkpoint step folder or policy path
  int64_t step = 0;    // the checkpoint's training step (0 for a policy file)
  EvalResult eval;     // metrics identical on every rank
};

EvalRunResult run_eval(Recipe& recipe, Comm& comm, const std::string& ckpt);

}  // namespace zerorl
