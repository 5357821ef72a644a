#include "core/config.h"

#include "core/recipe_keys.h"

#include <charconv>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

namespace zerorl {
namespace detail {

struct RecipeState {
  YAML::Node root;
  std::string name;                           // file path or "<string>"
  std::set<std::string> read;                 // dotted keys read (and their prefixes)
  std::map<std::string, std::string> origin;  // dotted key -> "command line 'k=v'"
};

}  // namespace detail

namespace {

std::string mark_text(const std::string& file, const YAML::Mark& m) {
  if (m.is_null()) return file;
  return str_cat(file, ":", m.line + 1, ":", m.column + 1);
}

std::vector<std::string> split_dots(const std::string& s) {
  std::vector<std::string> parts;
  std::string cur;
  for (char c : s) {
    if (c == '.') {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  parts.push_back(cur);
  return parts;
}

// Walk a dotted prefix ("a.b.") from the root without creating anything.
YAML::Node walk(const YAML::Node& root, const std::string& prefix) {
  YAML::Node n = root;
  if (prefix.empty()) return n;
  for (auto& part : split_dots(prefix.substr(0, prefix.size() - 1))) {
    if (!n.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
    const YAML::Node& cn = n;
    YAML::Node next = cn[part];
    if (!next.IsDefined()) return YAML::Node(YAML::NodeType::Undefined);
    n.reset(next);
  }
  return n;
}

template <typename T>
struct TypeName;
template <>
struct TypeName<int> {
  static constexpr const char* v = "an integer";
};
template <>
struct TypeName<long> {
  static constexpr const char* v = "an integer";
};
template <>
struct TypeName<long long> {
  static constexpr const char* v = "an integer";
};
template <>
struct TypeName<unsigned long> {
  static constexpr const char* v = "a non-negative integer";
};
template <>
struct TypeName<unsigned long long> {
  static constexpr const char* v = "a non-negative integer";
};
template <>
struct TypeName<double> {
  static constexpr const char* v = "a number";
};
template <>
struct TypeName<float> {
  static constexpr const char* v = "a number";
};
template <>
struct TypeName<bool> {
  static constexpr const char* v = "a boolean (true/false)";
};
template <>
struct TypeName<std::string> {
  static constexpr const char* v = "a string";
};
template <typename T>
struct TypeName<std::vector<T>> {
  static constexpr const char* v = "a list";
};

// The type as the recipe reference (core/recipe_keys.h) shows it.
template <typename T>
struct KeyTypeName {
  static constexpr const char* v = std::is_same_v<T, bool>          ? "bool"
                                   : std::is_same_v<T, std::string> ? "string"
                                   : std::is_floating_point_v<T>    ? "number"
                                   : std::is_unsigned_v<T>          ? "integer >= 0"
                                                                    : "integer";
};
template <typename T>
struct KeyTypeName<std::vector<T>> {
  static constexpr const char* v = std::is_same_v<T, std::string> ? "list of strings"
                                   : std::is_floating_point_v<T>  ? "list of numbers"
                                                                  : "list of integers";
};

template <typename T>
struct Convert {
  static bool run(const YAML::Node& n, T& out) {
    if (!n.IsScalar()) return false;
    // yaml-cpp accepts "1.5" as int by truncation in some versions; be strict.
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      const std::string& s = n.Scalar();
      if (s.find_first_of(".eE") != std::string::npos && s.rfind("0x", 0) != 0) return false;
    }
    try {
      out = n.as<T>();
      return true;
    } catch (const YAML::Exception&) {
      return false;
    }
  }
};
template <>
struct Convert<std::string> {
  static bool run(const YAML::Node& n, std::string& out) {
    if (!n.IsScalar()) return false;
    out = n.Scalar();
    return true;
  }
};
template <typename T>
struct Convert<std::vector<T>> {
  static bool run(const YAML::Node& n, std::vector<T>& out) {
    if (!n.IsSequence()) return false;
    out.clear();
    for (const auto& item : n) {
      T v;
      if (!Convert<T>::run(item, v)) return false;
      out.push_back(v);
    }
    return true;
  }
};

// A default written into the tree.  Floating values get the shortest text
// that reads back as the same value (std::to_chars: "0.1", not yaml-cpp's
// %.17g "0.10000000000000001"; "1000", "1e-09"), so the resolved recipe
// shows what a person would write.
template <typename T>
std::string shortest_text(T v) {
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, res.ptr);
}
template <typename T>
YAML::Node default_node(const T& v) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isfinite(v)) return YAML::Node(shortest_text(v));
    return YAML::Node(v);
  } else if constexpr (std::is_same_v<T, std::vector<double>>) {
    YAML::Node seq(YAML::NodeType::Sequence);
    for (double x : v) seq.push_back(default_node(x));
    return seq;
  } else {
    return YAML::Node(v);
  }
}

void collect_unread(const YAML::Node& n, const std::string& prefix, const detail::RecipeState& st,
                    std::vector<std::pair<std::string, YAML::Mark>>& out) {
  if (!n.IsMap()) return;
  for (auto it = n.begin(); it != n.end(); ++it) {
    std::string key = prefix + it->first.Scalar();
    if (!st.read.count(key)) {
      out.push_back({key, it->first.Mark()});
      continue;
    }
    if (st.read.count(key + "/*")) continue;  // free-form subtree
    collect_unread(it->second, key + ".", st, out);
  }
}

}  // namespace

// ---- RecipeKeyLog -------------------------------------------------------------

namespace {
thread_local RecipeKeyLog* t_key_log = nullptr;

std::string flow_text(const YAML::Node& n) {
  YAML::Emitter e;
  e << YAML::Flow << n;
  return e.c_str();
}

std::string choice_list(const std::vector<std::string>& choices) {
  std::string list;
  for (auto& c : choices) list += (list.empty() ? "" : ", ") + c;
  return list;
}
}  // namespace

RecipeKeyLog::RecipeKeyLog() {
  ZR_CHECK(t_key_log == nullptr, "RecipeKeyLog: one log per thread at a time");
  t_key_log = this;
}

RecipeKeyLog::~RecipeKeyLog() { t_key_log = nullptr; }

bool recipe_key_log_active() { return t_key_log != nullptr; }

void log_recipe_key_read(RecipeKeyRead r) {
  if (t_key_log == nullptr) return;
  r.context = t_key_log->context_;
  t_key_log->reads_.push_back(std::move(r));
}

// ---- ConfigNode ---------------------------------------------------------------

YAML::Node ConfigNode::node() const { return walk(st_->root, prefix_); }

YAML::Node ConfigNode::ensure_node() const {
  YAML::Node n = st_->root;
  if (prefix_.empty()) return n;
  for (auto& part : split_dots(prefix_.substr(0, prefix_.size() - 1))) {
    YAML::Node next = n[part];
    if (!next.IsDefined() || next.IsNull()) {
      n[part] = YAML::Node(YAML::NodeType::Map);
      next = n[part];
    }
    n.reset(next);
  }
  return n;
}

void ConfigNode::read_mark(const std::string& key) const {
  std::string full = prefix_ + key;
  st_->read.insert(full);
  // every enclosing section counts as read too
  for (size_t i = 0; i < full.size(); ++i)
    if (full[i] == '.') st_->read.insert(full.substr(0, i));
}

std::string ConfigNode::path(const std::string& key) const {
  std::string p = prefix_ + key;
  if (key.empty() && !p.empty()) p.pop_back();
  return p;
}

std::string ConfigNode::where(const std::string& key) const {
  std::string full = path(key);
  auto o = st_->origin.find(full);
  if (o != st_->origin.end()) return o->second;
  // an override of an enclosing key
  for (auto& [k, v] : st_->origin)
    if (full.rfind(k + ".", 0) == 0) return v;
  const YAML::Node n = node();
  if (!key.empty() && n.IsMap()) {
    for (auto it = n.begin(); it != n.end(); ++it)
      if (it->first.Scalar() == key) return mark_text(st_->name, it->first.Mark());
  }
  if (n.IsDefined() && !n.IsNull()) return mark_text(st_->name, n.Mark());
  return st_->name;
}

bool ConfigNode::has(const std::string& key) const {
  const YAML::Node n = node();
  return n.IsMap() && n[key].IsDefined() && !n[key].IsNull();
}

ConfigNode ConfigNode::section(const std::string& key) const {
  read_mark(key);
  const YAML::Node n = node();
  if (n.IsMap() && n[key].IsDefined() && !n[key].IsNull() && !n[key].IsMap())
    ZR_THROW(where(key), ": '", path(key), "' must be a section (a map of keys), got '",
             YAML::Dump(n[key]), "'");
  return ConfigNode(st_, prefix_ + key + ".");
}

void ConfigNode::mark_read(const std::string& key) const {
  read_mark(key);
  st_->read.insert(prefix_ + key + "/*");
}

YAML::Node ConfigNode::raw(const std::string& key) const {
  mark_read(key);
  if (recipe_key_log_active()) log_recipe_key_read({path(key), "free-form", "", false, ""});
  const YAML::Node n = node();
  if (!n.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
  return YAML::Clone(n[key]);
}

std::vector<std::string> ConfigNode::keys() const {
  std::vector<std::string> out;
  const YAML::Node n = node();
  if (!n.IsMap()) return out;
  for (auto it = n.begin(); it != n.end(); ++it) out.push_back(it->first.Scalar());
  return out;
}

void ConfigNode::type_error(const std::string& key, const char* want) const {
  const YAML::Node n = node();
  std::string got = n.IsMap() ? YAML::Dump(n[key]) : "";
  ZR_THROW(where(key), ": '", path(key), "' must be ", want, ", got '", got, "'");
}

template <typename T>
T ConfigNode::get(const std::string& key) const {
  read_mark(key);
  if (recipe_key_log_active()) log_recipe_key_read({path(key), KeyTypeName<T>::v, "", true, ""});
  const YAML::Node n = node();
  if (!n.IsMap() || !n[key].IsDefined() || n[key].IsNull())
    ZR_THROW(where(), ": missing required key '", path(key), "'");
  T out{};
  if (!Convert<T>::run(n[key], out)) type_error(key, TypeName<T>::v);
  return out;
}

template <typename T>
T ConfigNode::get(const std::string& key, const T& dflt) const {
  read_mark(key);
  if (recipe_key_log_active())
    log_recipe_key_read({path(key), KeyTypeName<T>::v, flow_text(default_node(dflt)), false, ""});
  const YAML::Node n = node();
  if (!n.IsMap() || !n[key].IsDefined() || n[key].IsNull()) {
    YAML::Node sec = ensure_node();
    sec[key] = default_node(dflt);
    return dflt;
  }
  T out{};
  if (!Convert<T>::run(n[key], out)) type_error(key, TypeName<T>::v);
  return out;
}

std::string ConfigNode::choice(const std::string& key, const std::vector<std::string>& choices,
                               const std::string& dflt) const {
  std::string v = get<std::string>(key, dflt);
  if (recipe_key_log_active())
    log_recipe_key_read({path(key), "one of " + choice_list(choices), dflt, false, ""});
  for (auto& c : choices)
    if (c == v) return v;
  std::string list;
  for (auto& c : choices) list += (list.empty() ? "" : ", ") + c;
  ZR_THROW(where(key), ": '", path(key), "' must be one of {", list, "}, got '", v, "'");
}

std::string ConfigNode::choice(const std::string& key,
                               const std::vector<std::string>& choices) const {
  std::string v = get<std::string>(key);
  if (recipe_key_log_active())
    log_recipe_key_read({path(key), "one of " + choice_list(choices), "", true, ""});
  for (auto& c : choices)
    if (c == v) return v;
  std::string list;
  for (auto& c : choices) list += (list.empty() ? "" : ", ") + c;
  ZR_THROW(where(key), ": '", path(key), "' must be one of {", list, "}, got '", v, "'");
}

#define ZR_CONFIG_INSTANTIATE(T)                           \
  template T ConfigNode::get<T>(const std::string&) const; \
  template T ConfigNode::get<T>(const std::string&, const T&) const;
ZR_CONFIG_INSTANTIATE(int)
ZR_CONFIG_INSTANTIATE(long)
ZR_CONFIG_INSTANTIATE(long long)
ZR_CONFIG_INSTANTIATE(unsigned long)
ZR_CONFIG_INSTANTIATE(unsigned long long)
ZR_CONFIG_INSTANTIATE(double)
ZR_CONFIG_INSTANTIATE(float)
ZR_CONFIG_INSTANTIATE(bool)
ZR_CONFIG_INSTANTIATE(std::string)
ZR_CONFIG_INSTANTIATE(std::vector<int>)
ZR_CONFIG_INSTANTIATE(std::vector<long>)
ZR_CONFIG_INSTANTIATE(std::vector<double>)
ZR_CONFIG_INSTANTIATE(std::vector<std::string>)
#undef ZR_CONFIG_INSTANTIATE

// ---- Recipe ------------------------------------------------------------------

Recipe Recipe::from_string(const std::string& yaml, const std::string& name) {
  Recipe r;
  r.st_ = std::make_shared<detail::RecipeState>();
  r.st_->name = name;
  try {
    r.st_->root = YAML::Load(yaml);
  } catch (const YAML::ParserException& e) {
    ZR_THROW(mark_text(name, e.mark), ": YAML syntax error: ", e.msg);
  }
  if (!r.st_->root.IsDefined() || r.st_->root.IsNull())
    r.st_->root = YAML::Node(YAML::NodeType::Map);
  ZR_CHECK(r.st_->root.IsMap(), name, ": a recipe must be a map of sections at the top level");
  return r;
}

Recipe Recipe::from_file(const std::string& path) {
  std::ifstream in(path);
  ZR_CHECK(in.good(), "cannot open recipe '", path, "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return from_string(ss.str(), path);
}

std::pair<std::string, std::string> split_override(const std::string& arg) {
  auto eq = arg.find('=');
  ZR_CHECK(eq != std::string::npos, "override '", arg, "' must look like key.sub=value");
  std::string key = arg.substr(0, eq);
  ZR_CHECK(!key.empty() && key.front() != '.' && key.back() != '.' &&
               key.find("..") == std::string::npos,
           "override '", arg, "' has a malformed key");
  return {key, arg.substr(eq + 1)};
}

void Recipe::apply_overrides(const std::vector<std::string>& overrides) {
  for (auto& arg : overrides) {
    auto [key, text] = split_override(arg);
    YAML::Node value;
    try {
      value = YAML::Load(text);
    } catch (const YAML::ParserException& e) {
      ZR_THROW("command line '", arg, "': value is not valid YAML: ", e.msg);
    }
    if (!value.IsDefined()) value = YAML::Node(std::string());
    auto parts = split_dots(key);
    YAML::Node n = st_->root;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      YAML::Node next = n[parts[i]];
      if (!next.IsDefined() || next.IsNull()) {
        n[parts[i]] = YAML::Node(YAML::NodeType::Map);
        next = n[parts[i]];
      }
      ZR_CHECK(next.IsMap(), "command line '", arg, "': '", parts[i],
               "' is a value, not a section");
      n.reset(next);
    }
    n[parts.back()] = value;
    st_->origin[key] = "command line '" + arg + "'";
  }
}

ConfigNode Recipe::root() const { return ConfigNode(st_, ""); }

void Recipe::check_all_read() const {
  std::vector<std::pair<std::string, YAML::Mark>> unread;
  collect_unread(st_->root, "", *st_, unread);
  if (unread.empty()) return;
  const auto& [key, mark] = unread.front();
  std::string where = mark_text(st_->name, mark);
  auto o = st_->origin.find(key);
  if (o != st_->origin.end()) where = o->second;
  std::string more = unread.size() > 1 ? str_cat(" (and ", unread.size() - 1, " more)") : "";
  ZR_THROW(where, ": unknown key '", key, "'", more,
           ": no component reads it (misspelt, or in the wrong section?)");
}

std::string Recipe::dump() const {
  YAML::Emitter out;
  out << st_->root;
  return std::string(out.c_str()) + "\n";
}

const std::string& Recipe::source_name() const { return st_->name; }

}  // namespace zerorl
