// Recipe configuration: a YAML document (yaml-cpp) plus `key.sub=value`
// command-line overrides, read through typed, position-aware accessors.
//
// Contract:
//   * Every read goes through a ConfigNode.  A wrong type, a missing required
//     key or a value out of range throws zerorl::Error naming the dotted key
//     and where it came from: "recipe.yaml:12:3" or "command line 'a.b=c'".
//   * Reads with a default write the default into the tree, so dump() gives
//     the fully resolved recipe, defaults included.
//   * Recipe::check_all_read() throws for the first key that no component
//     read: an unknown (e.g. misspelled) key is an error, never ignored.
//   * Not thread-safe: build component configs on one thread at start-up.
//
// Typical use, in each component's own config struct:
//     TrainerConfig TrainerConfig::from(const ConfigNode& n) {
//       TrainerConfig c;
//       c.lr = n.get<double>("lr", 1e-6);
//       c.loss = n.choice("loss", {"grpo", "dapo", "dr_grpo"}, "grpo");
//       ZR_CHECK(c.lr > 0, n.where("lr"), ": trainer.lr must be > 0, got ", c.lr);
//       return c;
//     }
#pragma once

#include <yaml-cpp/yaml.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"

namespace zerorl {

namespace detail {
struct RecipeState;  // shared by a Recipe and all its nodes
template <typename T>
struct YamlTypeName;
}  // namespace detail

class ConfigNode {
 public:
  ConfigNode() = default;

  // Required value; throws if absent.
  template <typename T>
  T get(const std::string& key) const;
  // Optional value; the default is written into the tree when absent.
  template <typename T>
  T get(const std::string& key, const T& dflt) const;
  // A string restricted to a set of choices.
  std::string choice(const std::string& key, const std::vector<std::string>& choices,
                     const std::string& dflt) const;
  std::string choice(const std::string& key, const std::vector<std::string>& choices) const;

  bool has(const std::string& key) const;
  // A sub-section (a map).  Absent sections read as empty: every get() with a
  // default then fills it in.
  ConfigNode section(const std::string& key) const;
  // Mark a whole sub-tree as read (a free-form section a plug-in interprets).
  void mark_read(const std::string& key) const;
  // The raw YAML of a key (marks it read), for free-form values.
  YAML::Node raw(const std::string& key) const;
  // Keys present in this section, in document order.
  std::vector<std::string> keys() const;

  // "file:line:col" or "command line 'k=v'" for a key of this section; the
  // section's own position when key is empty.
  std::string where(const std::string& key = "") const;
  // Dotted path of a key in this section ("trainer.lr").
  std::string path(const std::string& key = "") const;

 private:
  friend class Recipe;
  ConfigNode(std::shared_ptr<detail::RecipeState> st, std::string prefix)
      : st_(std::move(st)), prefix_(std::move(prefix)) {}
  YAML::Node node() const;         // this section's node (may be undefined)
  YAML::Node ensure_node() const;  // creates the section map if absent
  void read_mark(const std::string& key) const;
  [[noreturn]] void type_error(const std::string& key, const char* want) const;

  std::shared_ptr<detail::RecipeState> st_;
  std::string prefix_;  // "" for the root, "trainer." for a section
};

class Recipe {
 public:
  // Parse a YAML file; a syntax error names the file and line.
  static Recipe from_file(const std::string& path);
  static Recipe from_string(const std::string& yaml, const std::string& name = "<string>");

  // Apply "a.b.c=value" overrides; the value is parsed as YAML (so 1e-6 is a
  // number, [1,2] a list, true a bool).  Malformed overrides throw.
  void apply_overrides(const std::vector<std::string>& overrides);

  ConfigNode root() const;
  ConfigNode section(const std::string& key) const { return root().section(key); }

  // Throws naming the first key present in the document (or an override) that
  // nothing read.
  void check_all_read() const;

  // The resolved recipe (document + overrides + every default read) as YAML.
  std::string dump() const;
  const std::string& source_name() const;

 private:
  std::shared_ptr<detail::RecipeState> st_;
};

// Split "a.b=c" into ("a.b", "c"); throws on a missing '=' or empty key.
std::pair<std::string, std::string> split_override(const std::string& arg);

}  // namespace zerorl
