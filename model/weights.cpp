#include "model/weights.h"

#include <ATen/ATen.h>

#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "core/h5.h"

namespace zerorl::model {

static std::string join(const std::string& group, const std::string& name) {
  return group.empty() ? name : group + "/" + name;
}

void save_weights(const CausalLM& model, H5File& file, const std::string& group) {
  for (const auto& [name, t] : model.named_weights())
    file.write_tensor(join(group, name), t.detach().to(at::kCPU));
  std::string obj = group.empty() ? "" : group;
  file.write_attr(obj, "config_json", model.config().to_hf_json());
  file.write_attr(obj, "zerorl_format", int64_t{1});
}

ModelConfig read_config(const H5File& file, const std::string& group) {
  ZR_CHECK(file.has_attr(group, "config_json"), file.path(), ": group '", group,
           "' has no config_json attribute (not a zerorl model checkpoint?)");
  return ModelConfig::from_hf_json_text(file.read_attr_string(group, "config_json"),
                                        file.path() + ":" + group + "@config_json");
}

void load_weights(CausalLM& model, const H5File& file, const std::string& group) {
  at::NoGradGuard no_grad;
  for (auto& [name, t] : model.named_weights()) {
    std::string path = join(group, name);
    ZR_CHECK(file.exists(path), file.path(), ": tensor '", path, "' is missing");
    at::Tensor v = file.read_tensor(path);
    ZR_CHECK(v.sizes() == t.sizes(), file.path(), ": tensor '", path, "' has shape ", v.sizes(),
             " but the model needs ", t.sizes());
    t.set_data(v.to(t.device()));
  }
}

void save_model_h5(const CausalLM& model, const std::string& path) {
  std::string tmp = path + ".tmp";
  {
    H5File f(tmp, H5File::Mode::kCreate);
    save_weights(model, f);
    f.flush();
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  ZR_CHECK(!ec, path, ": cannot rename ", tmp, " into place: ", ec.message());
}

std::shared_ptr<CausalLM> load_model_h5(const std::string& path) {
  H5File f(path, H5File::Mode::kRead);
  auto model = std::make_shared<CausalLM>(read_config(f), /*random_init=*/false);
  load_weights(*model, f);
  return model;
}

}  // namespace zerorl::model
