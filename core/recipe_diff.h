// Which keys differ between two recipes (e.g. a checkpoint's resolved recipe
// and the one a resume brings): the dotted paths ("optimizer.lr") of every
// leaf that changed, was added or was removed; a sequence is one leaf.
// Sorted.  Throws zerorl::Error if either text is not YAML.
#pragma once

#include <string>
#include <vector>

namespace zerorl {

std::vector<std::string> recipe_changed_keys(const std::string& yaml_a, const std::string& yaml_b);

// Whether `key` matches one of `patterns`: an exact dotted path, or a
// section prefix ending in ".*" ("eval.*" matches "eval.every").
bool key_matches(const std::string& key, const std::vector<std::string>& patterns);

}  // namespace zerorl
