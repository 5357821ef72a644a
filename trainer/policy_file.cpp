#include "trainer/policy_file.h"

#include <filesystem>

#include "core/error.h"
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

}  // namespace zerorl
