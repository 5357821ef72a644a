// A policy file: one HDF5 file holding a model (model/weights.h layout, group
// "model", with its config.json) and the tokenizer it reads (root attribute
// "tokenizer_json", data/tokenizer.h's to_json()).  This is what
// `zerorl pretrain` writes, what a recipe's `policy.init` names, and what
// `zerorl generate --model` loads; a Hugging Face folder (config.json,
// *.safetensors, tokenizer.json) is accepted wherever a policy file is.
//
// Errors: missing files, a model without a tokenizer, or weights that do
// not fit the config throw zerorl::Error naming the path.
#pragma once

#include <memory>
#include <string>

#include "data/tokenizer.h"
#include "model/model.h"

namespace zerorl {

struct Policy {
  std::shared_ptr<model::CausalLM> model;
  std::shared_ptr<data::Tokenizer> tokenizer;
};

// Written to "<path>.tmp", flushed, renamed.
void save_policy(const std::string& path, const model::CausalLM& model,
                 const data::Tokenizer& tokenizer);
// A policy file or a Hugging Face folder.
Policy load_policy(const std::string& path);

}  // namespace zerorl
