#include <iomanip>
#include <iostream>

#include "cli/command.h"
#include "cli/recipe_args.h"
#include "core/comm_config.h"
#include "trainer/grpo_trainer.h"
#include "trainer/recipe_reference.h"
#include "trainer/stop_signal.h"

namespace zerorl::cli {

static void print_table(const TrainResult& r) {
  std::cout << "\n"
            << std::left << std::setw(24) << "metric" << std::setw(12) << "step 0" << std::setw(12)
            << "final"
            << "\n";
  for (auto& [k, v] : r.last_eval) {
    auto it = r.first_eval.find(k);
    std::cout << std::setw(24) << k << std::setw(12)
              << (it == r.first_eval.end() ? std::string("-") : std::to_string(it->second))
              << std::setw(12) << v << "\n";
  }
  std::cout << "steps " << r.steps_done << ", " << r.wall_seconds << " s; outputs in " << r.run_dir
            << "\n";
}

static int run_train_cmd(Args& args) {
  if (args.flag("--list-keys")) {
    args.finish();
    if (!args.positionals().empty()) throw UsageError("--list-keys takes no recipe");
    std::cout << recipe_reference_markdown();
    return 0;
  }
  std::string resume = args.value("--resume", "");
  if (!resume.empty() && resume != "auto" && resume.rfind("-", 0) == 0)
    throw UsageError("--resume takes auto or a checkpoint path");
  const bool overwrite = args.flag("--overwrite");
  if (overwrite && !resume.empty()) throw UsageError("--overwrite and --resume exclude each other");
  Recipe recipe = recipe_from_args(args);
  args.finish();
  auto comm = make_comm(CommConfig::from(recipe.root()));
  install_stop_handlers();
  auto res = run_train(recipe, *comm, resume, overwrite);
  if (res.stopped_by != 0) {
    if (comm->rank() == 0)
      std::cerr << "zerorl train: stopped by " << stop_signal_name(res.stopped_by) << " after step "
                << res.steps_done << "; checkpoint in " << res.run_dir
                << "/checkpoints; continue with --resume auto" << std::endl;
    return kStoppedExitCode;
  }
  if (comm->rank() == 0) print_table(res);
  return 0;
}

ZR_REGISTER_COMMAND(
    train, "GRPO training (R1-Zero style) from a recipe",
    "usage: zerorl train RECIPE [key.sub=value ...] [--resume auto|PATH | --overwrite]\n"
    "       zerorl train --list-keys\n"
    "\n"
    "Runs the GRPO loop of the recipe: rollout, reward, reference log-probs,\n"
    "advantage, update, log, evaluate, checkpoint.  Outputs go to\n"
    "<run.dir>/<run.name>/.  --resume auto continues from the newest\n"
    "checkpoint that verifies (falling back past corrupt ones); --resume PATH\n"
    "from a checkpoint step directory.  Without either, a run directory that\n"
    "already holds checkpoints is refused; --overwrite removes that run and\n"
    "starts again.  Under mpirun every rank rolls out its\n"
    "own groups and gradients are summed across ranks (rollout.mode:\n"
    "disaggregated: parallel.rollout_ranks ranks only generate, the rest\n"
    "only learn).  --list-keys prints\n"
    "every recipe key (training and pretraining) with its type, default and\n"
    "meaning: docs/RECIPES.md.\n"
    "\n"
    "SIGTERM, SIGINT or SIGUSR1: every rank finishes the current step, writes\n"
    "a checkpoint, and the command exits with status 75 and one line; a\n"
    "second signal exits at once.  Under mpirun, use scripts/launch_mpirun.sh\n"
    "(it gives the ranks time to checkpoint) or send mpirun SIGUSR1.\n",
    run_train_cmd);

}  // namespace zerorl::cli
