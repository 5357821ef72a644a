// A policy file: one HDF5 file holding a model (model/weights.h layout, group
// "model", with its config.json) and the tokenizer it reads (root attribute
// "tokenizer_json", data/tokenizer.h's to_json()).  This is what
// `zerorl pretrain` writes, what a recipe's `policy.init` names, and what
// `zerorl generate --model` loads; a Hugging Face folder (config.json,
// *.safetensors, tokenizer.json) is accepted wherever a policy file is.
//
// `zerorl import` writes a policy file from a Hugging Face folder (keeping
// its tokenizer.json, so the file is usable as policy.init); `zerorl export`
// writes a policy back as a Hugging Face folder (save_hf_policy) that
// transformers' AutoTokenizer / AutoModelForCausalLM.generate and zerorl
// itself load.
//
// Errors: missing files, a model without a tokenizer, or weights that do
// not fit the config throw zerorl::Error naming the path.
#pragma once

#include <memory>
#include <string>

#include "data/tokenizer.h"
#include "model/model.h"

namespace zerorl {

class ConfigNode;

struct Policy {
  std::shared_ptr<model::CausalLM> model;
  std::shared_ptr<data::Tokenizer> tokenizer;
};

namespace model {
struct HfSaveOptions;
}

// Written to "<path>.tmp", flushed, renamed.
void save_policy(const std::string& path, const model::CausalLM& model,
                 const data::Tokenizer& tokenizer);
// A policy file or a Hugging Face folder.
Policy load_policy(const std::string& path);

// What a command reads when the user names a model (`generate --model`,
// `export --ckpt`): a policy file, a model file without tokenizer, a
// Hugging Face folder, or a training checkpoint: a step folder
// (runs/<name>/checkpoints/step_<N>) or one of its rank files, whose weights
// are rank 0's.  A checkpoint is verified first (the whole step for a
// folder) and refused, naming `flag` and the reason, when it fails.  The
// tokenizer is the one stored with the model (a policy file's, a
// checkpoint's, an HF folder's tokenizer.json); null when there is none or
// !with_tokenizer (the caller brings its own).
Policy load_model_for_command(const std::string& path, const std::string& flag,
                              bool with_tokenizer = true);

// A Hugging Face folder of the policy (model::save_hf) with the tokenizer's
// tokenizer.json (Tokenizer::to_hf_json), a tokenizer_config.json naming its
// special tokens (clean_up_tokenization_spaces false: decode gives the
// token texts unchanged), and a generation_config.json with the end-of-text
// ids.  config.json's bos/eos/pad ids the model lacks are the tokenizer's.
void save_hf_policy(const Policy& policy, const std::string& dir, const model::HfSaveOptions& opt);

// The recipe's `policy` section:
//   init         a policy file (.h5) or a Hugging Face folder (required; a
//                relative path resolves as core/recipe_path.h says)
//   prepend_bos  put the tokenizer's BOS before every prompt (default false)
//   dtype        the compute dtype of policy, reference and rollout: fp32
//                (default) or bf16.  With bf16 the Optimizer keeps fp32 master
//                weights and fp32 AdamW moments (optimizer.h); log-probs,
//                ratios, KL, advantages and the loss stay fp32.
//   device       cpu (default) or cuda (checked against the process when the
//                run is built, not here)
// Bad values throw naming the key and its line.
struct PolicyConfig {
  std::string init;
  bool prepend_bos = false;
  at::ScalarType dtype = at::kFloat;
  bool on_cuda = false;

  static PolicyConfig from(const ConfigNode& n);
};
const char* dtype_name(at::ScalarType dtype);  // "fp32", "bf16", "fp16", "fp64"

// Casts the model's floating parameters to `dtype` (buffers such as the
// fp32 balancing bias keep theirs).  When any parameter had another dtype
// it returns true and (unless `what` is empty) logs one line naming `what`,
// the dtypes found and the target.
bool cast_parameters(model::CausalLM& model, at::ScalarType dtype, const std::string& what);

}  // namespace zerorl
