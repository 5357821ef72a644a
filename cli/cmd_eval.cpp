// zerorl eval: a recipe's evaluation of one policy, without training.
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/recipe_args.h"
#include "core/comm_config.h"
#include "trainer/eval_run.h"
#include "trainer/run_dir.h"

namespace zerorl::cli {

static int run_eval_cmd(Args& args) {
  const std::string ckpt = args.value("--ckpt", "");
  const bool json = args.flag("--json");
  const std::string out_dir = args.value("--out", "");
  Recipe recipe = recipe_from_args(args);
  args.finish();
  auto comm = make_comm(CommConfig::from(recipe.root()));
  EvalRunResult r = run_eval(recipe, *comm, ckpt);
  if (comm->rank() != 0) return 0;
  if (!out_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(out_dir, ec);
    ZR_CHECK(!ec, "--out ", out_dir, ": ", ec.message());
    write_file_atomic(out_dir + "/eval.jsonl",
                      format_metrics_line(r.step, r.eval.metrics, {}) + "\n");
    std::string text;
    for (const auto& line : r.eval.samples) {
      nlohmann::json j = nlohmann::json::parse(line);
      j["step"] = r.step;
      text += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    }
    write_file_atomic(out_dir + "/eval_samples.jsonl", text);
  }
  if (json) {
    // The line eval.jsonl holds for this step in a training run.
    std::cout << format_metrics_line(r.step, r.eval.metrics, {}) << std::endl;
    return 0;
  }
  std::cout << "\n" << r.policy << " (step " << r.step << ")\n";
  for (const auto& [k, v] : r.eval.metrics)
    std::cout << std::left << std::setw(24) << k << v << "\n";
  return 0;
}

ZR_REGISTER_COMMAND(
    eval, "pass@1 / pass@k / maj@k of a policy on a recipe's test split, without training",
    "usage: zerorl eval RECIPE [key.sub=value ...] [--ckpt PATH|auto] [--json] [--out DIR]\n"
    "\n"
    "Runs the recipe's evaluation (its eval: section: k, n, temperature,\n"
    "top_p, num_problems, greedy, the correct and format rewards) on its test\n"
    "split, as `zerorl train` does every eval.every steps, and prints the\n"
    "figures.  The same recipe, checkpoint and world size give the same\n"
    "figures as the training run's eval.jsonl line of that step.\n"
    "\n"
    "  --ckpt PATH   what to evaluate: a checkpoint step folder\n"
    "                (runs/NAME/checkpoints/step_N) or one of its rank files\n"
    "                (the whole step is verified first: every rank file there,\n"
    "                intact and agreeing; a corrupt one is refused), a copy of\n"
    "                a rank file elsewhere (verified alone), a policy file (.h5)\n"
    "                or a Hugging Face folder; 'auto' is the run's newest\n"
    "                checkpoint that verifies.  Default: the recipe's policy.init.\n"
    "  --json        print one JSON line {\"step\": N, metric: value, ...}\n"
    "                (the eval.jsonl format) instead of the table\n"
    "  --out DIR     also write DIR/eval.jsonl (that line) and DIR/eval_samples.jsonl\n"
    "                (one completion per problem, with each reward's answer and\n"
    "                reason); existing files there are replaced\n"
    "\n"
    "Under mpirun the problems are split over the ranks.\n",
    run_eval_cmd);

}  // namespace zerorl::cli
