#include "trainer/policy_file.h"

#include <torch/csrc/autograd/grad_mode.h>

#include <filesystem>
#include <set>

#include "core/config.h"
#include "core/error.h"
#include "core/log.h"
#include "core/h5.h"
#include "model/hf.h"
#include "model/weights.h"

namespace zerorl {

namespace fs = std::filesystem;

void save_policy(const std::string& path, const model::CausalLM& model,
                 const data::Tokenizer& tokenizer) {
  fs::path p(path);
  if (p.has_parent_path()) fs::create_directories(p.parent_path());
  std::string tmp = path + ".tmp";
  {
    H5File f(tmp, H5File::Mode::kCreate);
    model::save_weights(model, f, "model");
    // Tokenizer JSON can exceed an attribute's 64 KiB: keep it as a byte blob.
    f.write_bytes("tokenizer_json", tokenizer.to_json());
    f.write_attr("", "zerorl_policy", int64_t{1});
    f.flush();
  }
  fs::rename(tmp, path);
}

Policy load_policy(const std::string& path) {
  Policy p;
  if (fs::is_directory(path)) {
    ZR_CHECK(model::is_hf_dir(path), "'", path,
             "' is a folder but not a Hugging Face model (config.json + *.safetensors)");
    p.model = model::load_hf(path);
    p.tokenizer = data::load_tokenizer(path);
    return p;
  }
  ZR_CHECK(fs::exists(path), "policy file '", path, "' does not exist");
  H5File f(path, H5File::Mode::kRead);
  ZR_CHECK(f.exists("tokenizer_json"), "'", path,
           "' holds no tokenizer (dataset tokenizer_json): not a zerorl policy file");
  auto cfg = model::read_config(f, "model");
  p.model = std::make_shared<model::CausalLM>(cfg);
  model::load_weights(*p.model, f, "model");
  p.tokenizer = data::tokenizer_from_json(f.read_bytes("tokenizer_json"), path);
  return p;
}

at::ScalarType policy_dtype_from(const ConfigNode& policy) {
  return policy.choice("dtype", {"fp32", "bf16"}, "fp32") == "bf16" ? at::kBFloat16 : at::kFloat;
}

const char* dtype_name(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat:
      return "fp32";
    case at::kBFloat16:
      return "bf16";
    case at::kHalf:
      return "fp16";
    case at::kDouble:
      return "fp64";
    default:
      return "other";
  }
}

bool cast_parameters(model::CausalLM& model, at::ScalarType dtype, const std::string& what) {
  std::set<std::string> found;
  torch::NoGradGuard no_grad;
  for (auto& p : model.parameters(true)) {
    if (!p.is_floating_point() || p.scalar_type() == dtype) continue;
    found.insert(dtype_name(p.scalar_type()));
    p.set_data(p.to(dtype));
  }
  if (found.empty()) return false;
  if (what.empty()) return true;
  std::string from;
  for (const auto& f : found) from += (from.empty() ? "" : "+") + f;
  ZR_LOG_INFO(what, " holds ", from, " weights; converted to ", dtype_name(dtype),
              " (policy.dtype)");
  return true;
}

}  // namespace zerorl
