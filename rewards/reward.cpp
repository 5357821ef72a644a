#include "rewards/reward.h"

#include <mutex>

#include "rewards/command_reward.h"
#include "rewards/countdown_reward.h"
#include "rewards/format_reward.h"
#include "rewards/math_reward.h"
#include "rewards/plugin_reward.h"

namespace zerorl::rewards {
namespace {

struct Registry {
  std::mutex mu;
  std::map<std::string, RewardFactory> factories;
};

// Built-ins are registered here rather than by static initialisers in their
// own files: a static library drops object files nothing references, and the
// registration would silently vanish.
Registry& registry() {
  static Registry* r = [] {
    auto* reg = new Registry;
    reg->factories["math"] = [](const ConfigNode& n) -> std::unique_ptr<Reward> {
      return std::make_unique<MathReward>(MathRewardConfig::from(n));
    };
    reg->factories["format"] = [](const ConfigNode& n) -> std::unique_ptr<Reward> {
      return std::make_unique<FormatReward>(FormatRewardConfig::from(n));
    };
    reg->factories["countdown"] = [](const ConfigNode& n) -> std::unique_ptr<Reward> {
      return std::make_unique<CountdownReward>(CountdownRewardConfig::from(n));
    };
    reg->factories["plugin"] = [](const ConfigNode& n) -> std::unique_ptr<Reward> {
      return std::make_unique<PluginReward>(PluginRewardConfig::from(n));
    };
    reg->factories["command"] = [](const ConfigNode& n) -> std::unique_ptr<Reward> {
      return std::make_unique<CommandReward>(CommandRewardConfig::from(n));
    };
    return reg;
  }();
  return *r;
}

}  // namespace

void register_reward(const std::string& type, RewardFactory factory) {
  ZR_CHECK(!type.empty() && factory, "register_reward: empty type name or factory");
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.factories[type] = std::move(factory);
}

std::unique_ptr<Reward> make_reward(const std::string& type, const ConfigNode& options) {
  RewardFactory f;
  {
    auto& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    auto it = r.factories.find(type);
    if (it == r.factories.end()) {
      std::string known;
      for (auto& kv : r.factories) known += (known.empty() ? "" : ", ") + kv.first;
      ZR_THROW(options.where(), ": unknown reward type '", type, "' (known: ", known, ")");
    }
    f = it->second;
  }
  return f(options);
}

std::vector<std::string> registered_rewards() {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  std::vector<std::string> out;
  for (auto& kv : r.factories) out.push_back(kv.first);
  return out;
}

}  // namespace zerorl::rewards
