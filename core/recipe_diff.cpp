#include "core/recipe_diff.h"

#include <yaml-cpp/yaml.h>

#include <map>
#include <set>

#include "core/error.h"

namespace zerorl {

namespace {

void flatten(const YAML::Node& n, const std::string& prefix,
             std::map<std::string, std::string>& out) {
  if (n.IsMap()) {
    for (const auto& kv : n) {
      const std::string k = kv.first.as<std::string>();
      flatten(kv.second, prefix.empty() ? k : prefix + "." + k, out);
    }
    return;
  }
  YAML::Emitter e;
  e << YAML::Flow << n;
  out[prefix] = e.c_str();
}

std::map<std::string, std::string> leaves(const std::string& yaml, const char* which) {
  std::map<std::string, std::string> out;
  try {
    flatten(YAML::Load(yaml), "", out);
  } catch (const YAML::Exception& e) {
    ZR_THROW("recipe diff: the ", which, " recipe is not YAML: ", e.what());
  }
  return out;
}

}  // namespace

std::vector<std::string> recipe_changed_keys(const std::string& yaml_a, const std::string& yaml_b) {
  const auto a = leaves(yaml_a, "first"), b = leaves(yaml_b, "second");
  std::set<std::string> changed;
  for (const auto& [k, v] : a) {
    auto it = b.find(k);
    if (it == b.end() || it->second != v) changed.insert(k);
  }
  for (const auto& [k, v] : b)
    if (!a.count(k)) changed.insert(k);
  return {changed.begin(), changed.end()};
}

bool key_matches(const std::string& key, const std::vector<std::string>& patterns) {
  for (const auto& p : patterns) {
    if (p == key) return true;
    if (p.size() >= 2 && p.compare(p.size() - 2, 2, ".*") == 0 &&
        key.compare(0, p.size() - 1, p, 0, p.size() - 1) == 0)
      return true;
  }
  return false;
}

}  // namespace zerorl
