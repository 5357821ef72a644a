// File paths in a recipe: a relative path resolves against the recipe
// file's folder when it is not found from the working directory, so a
// recipe copied next to its data runs from anywhere, and the shipped
// recipes (written relative to the repository root) keep working from there.
//
//   absolute path                      -> kept
//   exists relative to the working dir -> kept (as written)
//   exists relative to the folder of the recipe file the key came from
//                                      -> <that folder>/<path>
//   otherwise                          -> kept (the reader's "not found"
//                                         error then names it)
// A key set by a command-line override has no recipe folder: only the
// working directory counts.  Pure apart from stat() calls; never throws.
#pragma once

#include <string>

namespace zerorl {

class ConfigNode;

// `value` is the path read from `key` of section `n`.
std::string resolve_recipe_path(const ConfigNode& n, const std::string& key,
                                const std::string& value);

}  // namespace zerorl
