// Model weights in HDF5 (zerorl checkpoints) and the parameter report.
//
// Layout inside an HDF5 file: group `group` (default "model") holds one
// dataset per weight, named by CausalLM::named_weights() (HF names, routed
// experts stacked [E,F,D] / [E,D,F]), in the weight's own dtype (bf16/f16
// bit-exact via core/h5.h).  The group carries the attribute "config_json":
// the model's Hugging Face config.json text, so a checkpoint is
// self-describing; "zerorl_format" = 1.
//
// Errors: a missing dataset, a shape mismatch or a config that does not
// parse throws zerorl::Error naming the file and the tensor.
#pragma once

#include <memory>
#include <string>

#include "model/model.h"

namespace zerorl {
class H5File;
}

namespace zerorl::model {

void save_weights(const CausalLM& model, H5File& file, const std::string& group = "model");
// Copies every weight from the file into `model` (shape must match; the
// file's dtype is kept, the model's device is kept).
void load_weights(CausalLM& model, const H5File& file, const std::string& group = "model");
ModelConfig read_config(const H5File& file, const std::string& group = "model");

// Whole-file helpers (write to "<path>.tmp", flush, rename).
void save_model_h5(const CausalLM& model, const std::string& path);
std::shared_ptr<CausalLM> load_model_h5(const std::string& path);

}  // namespace zerorl::model
