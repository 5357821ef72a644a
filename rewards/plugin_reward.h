// A reward from a shared library speaking the C ABI in plugin_abi.h.
//
// Recipe:
//   rewards:
//     brevity: {type: plugin, weight: 0.1, path: build/plugins/libzr_example_reward_plugin.so,
//               options: {max_chars: 200}}
// The library is dlopen()ed (RTLD_NOW | RTLD_LOCAL) once per reward instance
// and closed when the instance is destroyed.  Loading errors (missing file,
// missing entry point, ABI version mismatch, init failure) throw
// zerorl::Error at start-up, naming the path.  A score() failure costs that
// sample its reward (0, with the plug-in's reason); the counts are kept.
//
// A plug-in runs inside the zerorl process: a crash in it is a crash of the
// run.  Use a `command` reward (command_reward.h) for code you do not trust.
#pragma once

#include <atomic>
#include <mutex>
#include <string>

#include "core/config.h"
#include "rewards/plugin_abi.h"
#include "rewards/reward.h"

namespace zerorl::rewards {

struct PluginRewardConfig {
  std::string path;
  std::string options_json = "{}";
  static PluginRewardConfig from(const ConfigNode& n);
};

class PluginReward : public Reward {
 public:
  explicit PluginReward(const PluginRewardConfig& cfg);
  ~PluginReward() override;
  PluginReward(const PluginReward&) = delete;
  PluginReward& operator=(const PluginReward&) = delete;

  RewardResult score(const Sample& sample) const override;
  const std::string& plugin_name() const { return name_; }
  long long failures() const { return failures_.load(); }

 private:
  void* handle_ = nullptr;
  const zr_reward_plugin_v1* table_ = nullptr;
  void* state_ = nullptr;
  std::string name_, path_;
  mutable std::mutex mu_;  // used when the plug-in is not thread-safe
  mutable std::atomic<long long> failures_{0};
};

// YAML (a recipe's free-form `options:`) -> JSON text; scalars that read as
// numbers or booleans become numbers / booleans.
std::string yaml_to_json(const YAML::Node& node);

}  // namespace zerorl::rewards
