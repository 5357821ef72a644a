// Shared by the recipe-driven commands (pretrain, train, eval, plan): the
// first positional argument is the recipe file, the rest are key.sub=value
// overrides, applied in order.  Nothing is printed here: a run saves its
// resolved recipe as recipe.resolved.yaml (trainer/run_dir.h).
#pragma once

#include <string>
#include <vector>

#include "cli/args.h"
#include "core/config.h"

namespace zerorl::cli {

inline Recipe recipe_from_args(Args& args) {
  auto pos = args.positionals();
  if (pos.empty()) throw UsageError("missing RECIPE");
  for (size_t i = 1; i < pos.size(); ++i)
    if (pos[i].find('=') == std::string::npos)
      throw UsageError("expected key.sub=value after the recipe, got '" + pos[i] + "'");
  Recipe r = Recipe::from_file(pos[0]);
  r.apply_overrides(std::vector<std::string>(pos.begin() + 1, pos.end()));
  return r;
}

}  // namespace zerorl::cli
