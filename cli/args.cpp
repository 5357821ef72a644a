#include "cli/args.h"

#include <cstdlib>

namespace zerorl::cli {

Args::Args(std::vector<std::string> argv) {
  for (auto& a : argv) items_.push_back({std::move(a), false});
}

static bool is_flag(const std::string& s) { return s.size() > 2 && s.rfind("--", 0) == 0; }

int Args::value_index(size_t i) const {
  if (i + 1 < items_.size() && !is_flag(items_[i + 1].text)) return static_cast<int>(i + 1);
  return -1;
}

bool Args::flag(const std::string& name) {
  bool found = false;
  for (auto& it : items_) {
    if (it.text == name) {
      it.used = true;
      found = true;
    } else if (it.text.rfind(name + "=", 0) == 0) {
      throw UsageError(name + " takes no value (got '" + it.text + "')");
    }
  }
  return found;
}

std::vector<std::string> Args::values(const std::string& name) {
  std::vector<std::string> out;
  for (size_t i = 0; i < items_.size(); ++i) {
    auto& it = items_[i];
    if (it.used) continue;
    if (it.text == name) {
      int v = value_index(i);
      if (v < 0) throw UsageError(name + " needs a value");
      it.used = true;
      items_[v].used = true;
      out.push_back(items_[v].text);
      ++i;
    } else if (it.text.rfind(name + "=", 0) == 0) {
      it.used = true;
      out.push_back(it.text.substr(name.size() + 1));
    }
  }
  return out;
}

std::optional<std::string> Args::optional_value(const std::string& name) {
  auto v = values(name);
  if (v.empty()) return std::nullopt;
  if (v.size() > 1) throw UsageError(name + " given more than once");
  return v[0];
}

std::string Args::value(const std::string& name) {
  auto v = optional_value(name);
  if (!v) throw UsageError("missing required " + name);
  return *v;
}

std::string Args::value(const std::string& name, const std::string& dflt) {
  auto v = optional_value(name);
  return v ? *v : dflt;
}

long long Args::int_value(const std::string& name, long long dflt) {
  auto v = optional_value(name);
  if (!v) return dflt;
  char* end = nullptr;
  long long x = std::strtoll(v->c_str(), &end, 10);
  if (v->empty() || *end != '\0') throw UsageError(name + " expects an integer, got '" + *v + "'");
  return x;
}

double Args::double_value(const std::string& name, double dflt) {
  auto v = optional_value(name);
  if (!v) return dflt;
  char* end = nullptr;
  double x = std::strtod(v->c_str(), &end);
  if (v->empty() || *end != '\0') throw UsageError(name + " expects a number, got '" + *v + "'");
  return x;
}

std::vector<std::string> Args::positionals() {
  std::vector<std::string> out;
  for (size_t i = 0; i < items_.size(); ++i) {
    auto& it = items_[i];
    if (it.used || is_flag(it.text)) continue;
    // A bare value right after an unconsumed flag belongs to that flag only
    // once someone asks for it; positionals are the rest.
    it.used = true;
    out.push_back(it.text);
  }
  return out;
}

bool Args::help_requested() const {
  for (auto& it : items_)
    if (it.text == "--help" || it.text == "-h") return true;
  return false;
}

void Args::finish() const {
  for (auto& it : items_)
    if (!it.used) {
      if (is_flag(it.text)) throw UsageError("unknown flag " + it.text);
      throw UsageError("unexpected argument '" + it.text + "'");
    }
}

}  // namespace zerorl::cli
