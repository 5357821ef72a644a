#include <iostream>

#include "cli/command.h"
#include "cli/recipe_args.h"
#include "core/comm_config.h"
#include "core/log.h"
#include "trainer/pretrain.h"

namespace zerorl::cli {

static int run_pretrain_cmd(Args& args) {
  Recipe recipe = recipe_from_args(args);
  args.finish();
  auto comm = make_comm(CommConfig::from(recipe.root()));
  auto res = run_pretrain(recipe, *comm);
  if (comm->rank() == 0)
    std::cout << "pretrained " << res.steps << " steps in " << res.wall_seconds << " s, final nll "
              << res.final_loss << "\npolicy: " << res.policy_path << "\n";
  return 0;
}

ZR_REGISTER_COMMAND(pretrain, "train a base model (LM loss) from a recipe",
                    "usage: zerorl pretrain RECIPE [key.sub=value ...]\n"
                    "\n"
                    "Pretrains a base model on the recipe's synthetic corpus with the\n"
                    "language-modelling loss and writes a policy file (model + tokenizer)\n"
                    "to <run.dir>/<run.name>/<pretrain.output>.  Under mpirun the global\n"
                    "batch is split across ranks; the result does not depend on their number.\n"
                    "Every recipe key with its type, default and meaning: zerorl train\n"
                    "--list-keys (docs/RECIPES.md).\n",
                    run_pretrain_cmd);

}  // namespace zerorl::cli
