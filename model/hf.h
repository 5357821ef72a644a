// Hugging Face checkpoints: a folder with config.json and *.safetensors
// (one file, or shards listed in model.safetensors.index.json).
//
// Name mapping (zerorl <-> HF, prefix model.layers.i.mlp.experts.), the
// rest is identical:
//   gate_proj [E,F,D] <-> e.gate_proj.weight [F,D]   (e = 0 .. E-1)
//   up_proj   [E,F,D] <-> e.up_proj.weight   [F,D]
//   down_proj [E,D,F] <-> e.down_proj.weight [D,F]
// Import also accepts transformers 5.x fused tensors
//   model.layers.i.mlp.experts.gate_up_proj [E,2F,D] (gate rows first) and
//   model.layers.i.mlp.experts.down_proj [E,D,F];
// export writes the per-expert names (what hub checkpoints and
// save_pretrained use).  Tied models omit lm_head.weight on export and ignore
// it on import.  Tensors beyond num_hidden_layers (DeepSeek-V3's multi-token
// prediction layers) are ignored on import.
//
// generation_config.json, when present, supplies the end-of-text ids
// (ModelConfig::eos_token_ids): a list such as Llama-3-Instruct's
// [128001, 128008, 128009] ends a generation at any of them.
//
// Dtypes: each tensor keeps the dtype it has in the file (fp32/bf16/fp16), so
// import -> export is bit-lossless.  save_hf can cast everything (except the
// fp32 router bias) to one dtype.
//
// Errors: missing config.json or safetensors, a truncated file, a bad header,
// a shape mismatch or a missing tensor throw zerorl::Error naming the file
// and the tensor.
#pragma once

#include <c10/core/ScalarType.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "model/model.h"

namespace zerorl::model {

std::shared_ptr<CausalLM> load_hf(const std::string& dir);

struct HfSaveOptions {
  std::optional<at::ScalarType> dtype;  // cast floating weights; nullopt keeps each tensor's dtype
  int64_t max_shard_bytes = 0;          // > 0: shard files of at most this size + index json
};
void save_hf(const CausalLM& model, const std::string& dir, const HfSaveOptions& opt = {});

// The sampling defaults a base ships in generation_config.json (what
// transformers' generate() and vLLM use when the caller sets none); all
// empty when the folder has no such file or it leaves a knob out.  Bad JSON
// or a wrongly typed value throws naming the file and key.
struct GenerationDefaults {
  std::optional<bool> do_sample;
  std::optional<double> temperature, top_p;
  std::optional<int64_t> top_k;
};
GenerationDefaults read_generation_defaults(const std::string& dir);

// True when `path` is a folder with a config.json (a Hugging Face model).
bool is_hf_dir(const std::string& path);

}  // namespace zerorl::model
