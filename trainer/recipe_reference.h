// The recipe reference (issue 17 item 9): every key a recipe may hold, with
// its type, default and meaning, as the readers themselves read it
// (core/recipe_keys.h).  `zerorl train --list-keys` prints it;
// docs/RECIPES.md is its output, and the ctest cli.recipe_keys fails when the
// two differ.
//
// The keys come from running the commands' own readers (read_train_recipe,
// read_pretrain_recipe, CommConfig::from, and the command and plug-in
// reward readers, which would start a process or load a library if built)
// over a few recipes that together take every branch: task and data
// source, template, reward type, model architecture and attention.  The
// meanings come from trainer/recipe_meanings.inc.  Building the reference
// throws zerorl::Error when a key read has no meaning there, or a meaning
// names a key no reader reads, so the reference cannot fall behind the code.
#pragma once

#include <string>
#include <vector>

#include "core/recipe_keys.h"

namespace zerorl {

// One row of the reference.
struct RecipeKeyDoc {
  std::string group;    // "train" (train, eval, plan) or "pretrain"
  std::string key;      // "train.steps", "rewards.<name>.weight"
  std::string type;     // "integer", "one of grpo, dapo", "number (math, command)"
  std::string dflt;     // "`1`", "required", "`1000` (math), `5000` (command)"
  std::string meaning;  // from trainer/recipe_meanings.inc
};

// Every key, grouped by recipe kind, in each group's reading order.  Throws
// naming the keys when a key has no meaning or a meaning names no key.
std::vector<RecipeKeyDoc> recipe_key_docs();

// The reference as Markdown (docs/RECIPES.md).
std::string recipe_reference_markdown();

// The key a read is listed under: "rewards.acc.boxed" -> "rewards.<name>.boxed"
// (pipeline keys such as rewards.threads unchanged).
std::string recipe_doc_key(const std::string& path);

}  // namespace zerorl
