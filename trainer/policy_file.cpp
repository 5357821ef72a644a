#include "trainer/policy_file.h"

#include <torch/csrc/autograd/grad_mode.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/config.h"
#include "core/error.h"
#include "core/log.h"
#include "core/recipe_path.h"
#include "core/h5.h"
#include "model/hf.h"
#include "model/weights.h"
#include "trainer/checkpoint.h"

namespace zerorl {

namespace fs = std::filesystem;

namespace {

// An expert-parallel checkpoint (trainer/checkpoint.h, "Row shards"): the
// model from rank 0's config, its weights put together from the rank files
// that hold them, in the files' dtype (as model::load_model_h5 keeps it).
std::shared_ptr<model::CausalLM> load_sharded_model(const std::string& step_dir) {
  const std::string file0 = checkpoint_rank_file(step_dir, 0);
  std::shared_ptr<model::CausalLM> m;
  {
    H5File f(file0, H5File::Mode::kRead);
    m = std::make_shared<model::CausalLM>(model::read_config(f), /*random_init=*/false);
  }
  const NamedTensors w = load_checkpoint_group(step_dir, "model");
  std::map<std::string, at::Tensor> saved(w.begin(), w.end());
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : m->named_weights()) {
    auto it = saved.find(name);
    ZR_CHECK(it != saved.end(), step_dir, ": tensor 'model/", name, "' is in no rank file");
    ZR_CHECK(it->second.sizes() == t.sizes(), step_dir, ": tensor 'model/", name, "' has shape ",
             it->second.sizes(), " but the model needs ", t.sizes());
    t.set_data(it->second.to(t.device()));
  }
  return m;
}

}  // namespace

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

Policy load_model_for_command(const std::string& path, const std::string& flag,
                              bool with_tokenizer) {
  Policy p;
  std::error_code ec;
  ZR_CHECK(fs::exists(path, ec), flag, " ", path, ": no such file or folder");
  if (model::is_hf_dir(path)) {
    p.model = model::load_hf(path);
    if (with_tokenizer && fs::exists(fs::path(path) / "tokenizer.json"))
      p.tokenizer = data::load_tokenizer(path);
    return p;
  }
  std::string file = path;
  bool sharded = false;  // an expert-parallel checkpoint's step folder
  if (fs::is_directory(path, ec)) {
    ZR_CHECK(fs::exists(fs::path(path) / "rank_0.h5", ec), flag, " ", path,
             ": a folder that is neither a Hugging Face model (config.json) nor a checkpoint "
             "step folder (rank_0.h5)");
    const std::string why = verify_checkpoint_step(path);
    ZR_CHECK(why.empty(), flag, " ", path, ": the checkpoint fails verification (", why,
             "); refusing to read it");
    file = checkpoint_rank_file(path, 0);
    sharded = checkpoint_has_row_shards(path);
  } else {
    const std::string why = verify_if_checkpoint(path);
    ZR_CHECK(why.empty(), flag, " ", path, ": the checkpoint fails verification (", why,
             "); refusing to read it");
    ZR_CHECK(!checkpoint_has_row_shards(path), flag, " ", path,
             ": this rank file of an expert-parallel checkpoint holds only some of the experts; "
             "give its step folder (",
             fs::path(path).parent_path().string(), ")");
  }
  p.model = sharded ? load_sharded_model(path) : model::load_model_h5(file);
  if (!with_tokenizer) return p;
  H5File f(file, H5File::Mode::kRead);
  if (f.exists("tokenizer_json")) {  // a policy file
    p.tokenizer =
        data::tokenizer_from_json(f.read_bytes("tokenizer_json"), file + ":tokenizer_json");
  } else if (f.exists("meta")) {  // a training checkpoint (trainer/checkpoint.h)
    auto info = inspect_checkpoint(file);
    auto it = info.strings.find("tokenizer_json");
    if (it != info.strings.end())
      p.tokenizer = data::tokenizer_from_json(it->second, file + ":tokenizer_json");
  } else if (f.has_attr("model", "tokenizer_json")) {
    p.tokenizer = data::tokenizer_from_json(f.read_attr_string("model", "tokenizer_json"),
                                            file + ":model/tokenizer_json");
  }
  return p;
}

namespace {

void write_json(const fs::path& path, const nlohmann::json& j) {
  std::ofstream f(path);
  f << j.dump(2) << "\n";
  f.close();
  ZR_CHECK(f.good(), path.string(), ": write failed");
}

}  // namespace

void save_hf_policy(const Policy& policy, const std::string& dir, const model::HfSaveOptions& opt) {
  ZR_CHECK(policy.tokenizer, "export to ", dir, ": the model has no tokenizer");
  const data::Tokenizer& tok = *policy.tokenizer;
  const model::ModelConfig& mc = policy.model->config();
  model::save_hf(*policy.model, dir, opt);
  using nlohmann::json;
  const fs::path d(dir);
  // Token ids the model's config lacks come from the tokenizer.
  auto id_or = [](int64_t model_id, int32_t tok_id) {
    const int64_t id = model_id >= 0 ? model_id : tok_id;
    return id >= 0 ? json(id) : json(nullptr);
  };
  json eos =
      mc.eos_token_ids.size() > 1 ? json(mc.eos_token_ids) : id_or(mc.eos_token_id, tok.eos_id());
  json cfg;
  {
    std::ifstream in(d / "config.json");
    cfg = json::parse(in);
  }
  cfg["bos_token_id"] = id_or(mc.bos_token_id, tok.bos_id());
  cfg["eos_token_id"] = eos;
  cfg["pad_token_id"] = id_or(mc.pad_token_id, tok.pad_id());
  write_json(d / "config.json", cfg);
  json gen = {{"bos_token_id", cfg["bos_token_id"]},
              {"eos_token_id", eos},
              {"pad_token_id", cfg["pad_token_id"]}};
  write_json(d / "generation_config.json", gen);
  {
    std::ofstream f(d / "tokenizer.json");
    f << tok.to_hf_json();
    f.close();
    ZR_CHECK(f.good(), (d / "tokenizer.json").string(), ": write failed");
  }
  json tc = {{"tokenizer_class", "PreTrainedTokenizerFast"},
             {"clean_up_tokenization_spaces", false},
             {"model_max_length", mc.max_position}};
  auto name = [&](const char* key, int32_t id) {
    if (id >= 0) tc[key] = tok.id_to_token(id);
  };
  name("bos_token", tok.bos_id());
  name("eos_token", tok.eos_id());
  name("pad_token", tok.pad_id());
  name("unk_token", tok.token_to_id("<unk>"));
  write_json(d / "tokenizer_config.json", tc);
}

PolicyConfig PolicyConfig::from(const ConfigNode& n) {
  PolicyConfig c;
  c.init = resolve_recipe_path(n, "init", n.get<std::string>("init"));
  c.prepend_bos = n.get<bool>("prepend_bos", c.prepend_bos);
  c.dtype = n.choice("dtype", {"fp32", "bf16"}, "fp32") == "bf16" ? at::kBFloat16 : at::kFloat;
  c.on_cuda = n.choice("device", {"cpu", "cuda"}, "cpu") == "cuda";
  return c;
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
