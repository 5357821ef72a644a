#include "rewards/plugin_reward.h"

#include <dlfcn.h>
#include <nlohmann/json.hpp>

#include <cmath>

#include "core/log.h"
#include "core/recipe_path.h"

namespace zerorl::rewards {
namespace {

nlohmann::json yaml_to_json_value(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Sequence: {
      auto a = nlohmann::json::array();
      for (const auto& x : n) a.push_back(yaml_to_json_value(x));
      return a;
    }
    case YAML::NodeType::Map: {
      auto o = nlohmann::json::object();
      for (const auto& kv : n) o[kv.first.as<std::string>()] = yaml_to_json_value(kv.second);
      return o;
    }
    case YAML::NodeType::Scalar: {
      const std::string s = n.Scalar();
      if (n.Tag() == "!") return s;  // quoted: stays a string
      long long i;
      double d;
      bool b;
      if (YAML::convert<long long>::decode(n, i)) return i;
      if (YAML::convert<double>::decode(n, d)) return d;
      if (YAML::convert<bool>::decode(n, b)) return b;
      return s;
    }
  }
  return nullptr;
}

}  // namespace

std::string yaml_to_json(const YAML::Node& node) {
  if (!node.IsDefined() || node.IsNull()) return "{}";
  return yaml_to_json_value(node).dump();
}

PluginRewardConfig PluginRewardConfig::from(const ConfigNode& n) {
  PluginRewardConfig c;
  c.path = resolve_recipe_path(n, "path", n.get<std::string>("path"));
  if (n.has("options")) c.options_json = yaml_to_json(n.raw("options"));
  return c;
}

PluginReward::PluginReward(const PluginRewardConfig& cfg) : path_(cfg.path) {
  handle_ = dlopen(cfg.path.c_str(), RTLD_NOW | RTLD_LOCAL);
  ZR_CHECK(handle_ != nullptr, "reward plug-in '", cfg.path, "': dlopen failed: ", dlerror());
  auto entry = reinterpret_cast<zr_reward_plugin_entry_fn>(dlsym(handle_, ZR_REWARD_PLUGIN_ENTRY));
  if (!entry) {
    dlclose(handle_);
    ZR_THROW("reward plug-in '", cfg.path, "' does not export ", ZR_REWARD_PLUGIN_ENTRY);
  }
  table_ = entry(ZR_REWARD_PLUGIN_ABI_VERSION);
  if (!table_ || table_->abi_version != ZR_REWARD_PLUGIN_ABI_VERSION) {
    unsigned got = table_ ? table_->abi_version : 0;
    dlclose(handle_);
    ZR_THROW("reward plug-in '", cfg.path, "' speaks ABI version ", got, ", zerorl needs ",
             ZR_REWARD_PLUGIN_ABI_VERSION);
  }
  if (!table_->init || !table_->score || !table_->destroy) {
    dlclose(handle_);
    ZR_THROW("reward plug-in '", cfg.path, "' has a null init/score/destroy");
  }
  name_ = table_->name ? table_->name : cfg.path;
  char err[512] = {0};
  state_ = table_->init(cfg.options_json.c_str(), err, sizeof err);
  if (!state_) {
    dlclose(handle_);
    err[sizeof err - 1] = 0;
    ZR_THROW("reward plug-in '", cfg.path, "' init failed: ", err[0] ? err : "(no reason given)");
  }
}

PluginReward::~PluginReward() {
  if (table_ && state_) table_->destroy(state_);
  if (handle_) dlclose(handle_);
}

RewardResult PluginReward::score(const Sample& s) const {
  zr_reward_sample cs{s.prompt.data(),
                      s.prompt.size(),
                      s.completion.data(),
                      s.completion.size(),
                      s.gold.data(),
                      s.gold.size(),
                      s.task.data(),
                      s.task.size(),
                      nullptr,
                      0};
  const std::string meta = s.metadata_json.empty() ? std::string("{}") : s.metadata_json;
  cs.metadata_json = meta.data();
  cs.metadata_json_len = meta.size();
  double value = 0.0;
  char err[512] = {0};
  int rc;
  if (table_->thread_safe) {
    rc = table_->score(state_, &cs, &value, err, sizeof err);
  } else {
    std::lock_guard<std::mutex> lock(mu_);
    rc = table_->score(state_, &cs, &value, err, sizeof err);
  }
  err[sizeof err - 1] = 0;
  RewardResult r;
  if (rc != 0 || !std::isfinite(value)) {
    failures_.fetch_add(1);
    r.failed = true;
    r.error = str_cat(
        "plug-in ", name_, ": ",
        rc != 0 ? (err[0] ? std::string(err) : "score failed (code " + std::to_string(rc) + ")")
                : std::string("non-finite value"));
    return r;
  }
  r.value = value;
  return r;
}

}  // namespace zerorl::rewards
