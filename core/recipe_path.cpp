#include "core/recipe_path.h"

#include <filesystem>

#include "core/config.h"

namespace zerorl {

namespace fs = std::filesystem;

std::string resolve_recipe_path(const ConfigNode& n, const std::string& key,
                                const std::string& value) {
  std::error_code ec;
  if (value.empty() || fs::path(value).is_absolute() || fs::exists(value, ec)) return value;
  // where() is "<file>:<line>:<col>" for a key read from a recipe file.
  std::string where = n.where(key);
  for (int i = 0; i < 2; ++i) {
    const size_t colon = where.rfind(':');
    if (colon == std::string::npos) return value;
    where.resize(colon);
  }
  if (!fs::is_regular_file(where, ec)) return value;  // a command line override, a string
  const fs::path candidate = fs::path(where).parent_path() / value;
  return fs::exists(candidate, ec) ? candidate.string() : value;
}

}  // namespace zerorl
