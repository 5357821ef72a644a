#include "model/hf.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/log.h"
#include "core/safetensors.h"

namespace zerorl::model {

namespace fs = std::filesystem;
using nlohmann::json;

bool is_hf_dir(const std::string& path) {
  return fs::is_directory(path) && fs::exists(fs::path(path) / "config.json");
}

namespace {

// All tensors of a folder: name -> reader.
struct HfTensors {
  std::vector<std::unique_ptr<SafetensorsReader>> readers;
  std::map<std::string, const SafetensorsReader*> where;
  std::set<std::string> used;

  bool has(const std::string& n) const { return where.count(n) > 0; }
  const SafetensorsReader& file(const std::string& n) const { return *where.at(n); }
  at::Tensor read(const std::string& n) {
    used.insert(n);
    return where.at(n)->read(n);
  }
};

HfTensors open_folder(const std::string& dir) {
  HfTensors h;
  fs::path index = fs::path(dir) / "model.safetensors.index.json";
  std::vector<std::string> files;
  std::map<std::string, std::string> weight_map;
  if (fs::exists(index)) {
    std::ifstream f(index);
    json j;
    try {
      j = json::parse(f);
    } catch (const std::exception& e) {
      ZR_THROW(index.string(), ": not valid JSON: ", e.what());
    }
    ZR_CHECK(j.contains("weight_map") && j["weight_map"].is_object(), index.string(),
             ": no weight_map object");
    std::set<std::string> unique;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      weight_map[it.key()] = it->get<std::string>();
      unique.insert(it->get<std::string>());
    }
    files.assign(unique.begin(), unique.end());
  } else {
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().extension() == ".safetensors") files.push_back(e.path().filename().string());
    std::sort(files.begin(), files.end());
  }
  ZR_CHECK(!files.empty(), dir, ": no *.safetensors files");
  for (const auto& name : files) {
    std::string path = (fs::path(dir) / name).string();
    ZR_CHECK(fs::exists(path), path, ": listed in ", index.string(), " but missing");
    h.readers.push_back(std::make_unique<SafetensorsReader>(path));
    const SafetensorsReader* r = h.readers.back().get();
    for (const auto& t : r->names()) {
      if (!weight_map.empty()) {
        auto it = weight_map.find(t);
        if (it == weight_map.end() || it->second != name)
          continue;  // index says it lives elsewhere
      }
      ZR_CHECK(h.where.emplace(t, r).second, path, ": tensor '", t, "' also appears in ",
               h.where.at(t)->path());
    }
  }
  for (const auto& [t, file] : weight_map)
    ZR_CHECK(h.where.count(t), (fs::path(dir) / file).string(), ": tensor '", t,
             "' is listed in the index but missing from the file");
  return h;
}

std::string shape_str(at::IntArrayRef s) {
  std::ostringstream os;
  os << s;
  return os.str();
}

void check_shape(const HfTensors& h, const std::string& hf_name, at::IntArrayRef got,
                 at::IntArrayRef want) {
  ZR_CHECK(got == want, h.file(hf_name).path(), ": tensor '", hf_name, "' has shape ",
           shape_str(got), " but config.json implies ", shape_str(want));
}

// generation_config.json as a JSON object, or null when the folder has none.
json read_generation_config(const std::string& dir) {
  const fs::path path = fs::path(dir) / "generation_config.json";
  if (!fs::exists(path)) return nullptr;
  std::ifstream f(path);
  json j;
  try {
    j = json::parse(f);
  } catch (const std::exception& e) {
    ZR_THROW(path.string(), ": not valid JSON: ", e.what());
  }
  ZR_CHECK(j.is_object(), path.string(), ": expected a JSON object");
  return j;
}

// generation_config.json's eos_token_id (an id or a list) replaces
// config.json's: it is what transformers' generate() stops at.
void apply_generation_config(const std::string& dir, ModelConfig& cfg) {
  const json j = read_generation_config(dir);
  if (j.is_null()) return;
  const fs::path path = fs::path(dir) / "generation_config.json";
  auto it = j.find("eos_token_id");
  if (it == j.end() || it->is_null()) return;
  std::vector<int64_t> ids;
  try {
    ids =
        it->is_array() ? it->get<std::vector<int64_t>>() : std::vector<int64_t>{it->get<int64_t>()};
  } catch (const std::exception&) {
    ZR_THROW(path.string(), ": eos_token_id must be an id or a list of ids, got ", it->dump());
  }
  cfg.eos_token_ids = ids;
  cfg.eos_token_id = ids.empty() ? -1 : ids.front();
  cfg.validate(path.string());
}

const std::regex kExpertRe(
    R"(^(model\.layers\.\d+\.mlp\.experts)\.(gate_proj|up_proj|down_proj)$)");

}  // namespace

GenerationDefaults read_generation_defaults(const std::string& dir) {
  GenerationDefaults d;
  const json j = read_generation_config(dir);
  if (j.is_null()) return d;
  const std::string path = (fs::path(dir) / "generation_config.json").string();
  auto get = [&](const char* key, auto& out) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return;
    try {
      out = it->get<typename std::remove_reference_t<decltype(out)>::value_type>();
    } catch (const std::exception&) {
      ZR_THROW(path, ": key '", key, "' has the wrong type (", it->dump(), ")");
    }
  };
  get("do_sample", d.do_sample);
  get("temperature", d.temperature);
  get("top_p", d.top_p);
  get("top_k", d.top_k);
  return d;
}

std::shared_ptr<CausalLM> load_hf(const std::string& dir) {
  ZR_CHECK(fs::is_directory(dir), dir, ": not a directory (expected a Hugging Face model folder)");
  ModelConfig cfg = ModelConfig::from_hf_json_file((fs::path(dir) / "config.json").string());
  apply_generation_config(dir, cfg);
  HfTensors h = open_folder(dir);
  auto model = std::make_shared<CausalLM>(cfg, /*random_init=*/false);
  at::NoGradGuard no_grad;
  std::string any_file = h.readers.front()->path();
  int64_t E = cfg.moe.num_experts;
  for (auto& [name, param] : model->named_weights()) {
    std::smatch m;
    at::Tensor v;
    if (std::regex_match(name, m, kExpertRe)) {
      std::string prefix = m[1], which = m[2];
      std::string first = prefix + ".0." + which + ".weight";
      std::string fused = which == "down_proj" ? prefix + ".down_proj" : prefix + ".gate_up_proj";
      if (h.has(first)) {
        std::vector<at::Tensor> parts;
        for (int64_t e = 0; e < E; ++e) {
          std::string n = prefix + "." + std::to_string(e) + "." + which + ".weight";
          ZR_CHECK(h.has(n), any_file, ": tensor '", n, "' is missing (config.json has ", E,
                   " routed experts)");
          at::Tensor t = h.read(n);
          check_shape(h, n, t.sizes(), param.sizes().slice(1));
          parts.push_back(t.to(parts.empty() ? t.scalar_type() : parts.front().scalar_type()));
        }
        v = at::stack(parts);
      } else if (h.has(fused)) {
        at::Tensor t = h.read(fused);
        if (which == "down_proj") {
          check_shape(h, fused, t.sizes(), param.sizes());
          v = t;
        } else {
          int64_t F = param.size(1);
          check_shape(h, fused, t.sizes(), {param.size(0), 2 * F, param.size(2)});
          v = t.narrow(1, which == "gate_proj" ? 0 : F, F).contiguous();
        }
      } else {
        ZR_THROW(any_file, ": tensor '", first, "' (or fused '", fused, "') is missing");
      }
    } else {
      ZR_CHECK(h.has(name), any_file, ": tensor '", name, "' is missing",
               h.readers.size() > 1 ? " from every shard" : "");
      v = h.read(name);
      check_shape(h, name, v.sizes(), param.sizes());
    }
    param.set_data(v.to(param.device()));
  }
  if (cfg.tie_embeddings && h.has("lm_head.weight")) h.used.insert("lm_head.weight");
  int64_t unused = 0;
  std::string example;
  std::regex layer_re(R"(^model\.layers\.(\d+)\.)");
  for (const auto& [n, r] : h.where) {
    if (h.used.count(n)) continue;
    std::smatch lm;
    if (std::regex_search(n, lm, layer_re) && std::stoll(lm[1]) >= cfg.num_layers)
      continue;  // MTP layers
    ++unused;
    if (example.empty()) example = n;
  }
  if (unused > 0)
    ZR_LOG_WARN(dir, ": ", unused, " tensor(s) not used by the model, e.g. '", example, "'");
  return model;
}

void save_hf(const CausalLM& model, const std::string& dir, const HfSaveOptions& opt) {
  const ModelConfig& cfg = model.config();
  fs::create_directories(dir);
  std::vector<std::pair<std::string, at::Tensor>> out;
  auto cast = [&](const std::string& name, at::Tensor t) {
    t = t.detach().to(at::kCPU);
    bool keep_fp32 =
        name.find("e_score_correction_bias") != std::string::npos ||
        ((cfg.arch == Arch::kDeepseekV3 || cfg.arch == Arch::kDeepseekV2) && name.size() > 16 &&
         name.compare(name.size() - 16, 16, ".mlp.gate.weight") == 0);
    if (opt.dtype && t.is_floating_point() && !keep_fp32) t = t.to(*opt.dtype);
    return t.contiguous();
  };
  at::ScalarType main_dtype = at::kFloat;
  for (const auto& [name, t] : model.named_weights()) {
    std::smatch m;
    if (std::regex_match(name, m, kExpertRe)) {
      for (int64_t e = 0; e < t.size(0); ++e)
        out.emplace_back(
            std::string(m[1]) + "." + std::to_string(e) + "." + std::string(m[2]) + ".weight",
            cast(name, t.select(0, e)));
    } else {
      out.emplace_back(name, cast(name, t));
      if (name == "model.embed_tokens.weight") main_dtype = out.back().second.scalar_type();
    }
  }
  json cj = json::parse(cfg.to_hf_json());
  cj["dtype"] = main_dtype == at::kBFloat16 ? "bfloat16"
                : main_dtype == at::kHalf   ? "float16"
                                            : "float32";
  {
    std::ofstream f(fs::path(dir) / "config.json");
    f << cj.dump(2) << "\n";
    ZR_CHECK(f.good(), dir, "/config.json: write failed");
  }
  // Remove shards of an earlier export so the folder holds one consistent set.
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".safetensors" ||
        e.path().filename() == "model.safetensors.index.json")
      fs::remove(e.path());
  if (opt.max_shard_bytes <= 0) {
    write_safetensors((fs::path(dir) / "model.safetensors").string(), out);
    return;
  }
  std::vector<std::vector<std::pair<std::string, at::Tensor>>> shards(1);
  int64_t cur = 0, total = 0;
  for (auto& kv : out) {
    int64_t nb = static_cast<int64_t>(kv.second.nbytes());
    if (cur > 0 && cur + nb > opt.max_shard_bytes) shards.emplace_back(), cur = 0;
    shards.back().push_back(kv);
    cur += nb;
    total += nb;
  }
  json index;
  index["metadata"] = {{"total_size", total}};
  index["weight_map"] = json::object();
  char buf[64];
  for (size_t i = 0; i < shards.size(); ++i) {
    std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
    write_safetensors((fs::path(dir) / buf).string(), shards[i]);
    for (const auto& kv : shards[i]) index["weight_map"][kv.first] = buf;
  }
  std::ofstream f(fs::path(dir) / "model.safetensors.index.json");
  f << index.dump(2) << "\n";
  ZR_CHECK(f.good(), dir, "/model.safetensors.index.json: write failed");
}

}  // namespace zerorl::model
