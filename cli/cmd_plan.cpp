#include <iostream>

#include "cli/command.h"
#include "cli/recipe_args.h"
#include "trainer/memory_plan.h"

namespace zerorl::cli {

static int run_plan_cmd(Args& args) {
  const long long world = args.int_value("--world-size", 1);
  const double gib = args.double_value("--gpu-memory", 0.0);
  const long long prompt = args.int_value("--prompt-tokens", 512);
  const long long ep = args.int_value("--expert-parallel", 1);
  if (world < 1) throw UsageError("--world-size must be >= 1");
  if (gib < 0) throw UsageError("--gpu-memory must be >= 0");
  if (prompt < 1) throw UsageError("--prompt-tokens must be >= 1");
  Recipe recipe = recipe_from_args(args);
  args.finish();
  MemoryPlanInput in = plan_input_from_recipe(recipe, world, gib, prompt);
  in.expert_parallel = ep;
  const MemoryPlan plan = plan_memory(in);
  std::cout << in.model.summary() << "; " << world << " ranks, "
            << (in.param_bytes == 2 ? "bf16" : "fp32") << ", zero " << in.zero
            << ", expert parallel " << ep
            << (ep > 1 ? " (what-if: expert parallelism is planned, issue #14)" : "") << "\n"
            << plan.table();
  return plan.fits ? 0 : 3;
}

ZR_REGISTER_COMMAND(
    plan, "per-rank memory plan of a training recipe, and whether it fits",
    "usage: zerorl plan RECIPE [key.sub=value ...] [--world-size N] [--gpu-memory GIB]\n"
    "                   [--prompt-tokens N] [--expert-parallel X]\n"
    "\n"
    "Prints, per rank, the bytes of parameters, fp32 master weights, AdamW moments,\n"
    "gradients, the reference model, activations of one micro-batch (with and\n"
    "without activation checkpointing), the log-prob logits chunk and the rollout\n"
    "KV cache, and whether the peak fits --gpu-memory (GiB; 0: not checked).  The\n"
    "model's shapes come from policy.init (a Hugging Face folder or config.json, or\n"
    "a policy file); no weights are read.  Reads policy.dtype, train.zero,\n"
    "train.micro_batch, train.activation_checkpointing, rollout.num_slots and\n"
    "sampling.max_new_tokens.  --prompt-tokens is the prompt length assumed\n"
    "(default 512).  --expert-parallel X is a what-if: routed experts sharded over\n"
    "X ranks (expert parallelism is planned, issue #14).  Exit status 3 when the\n"
    "plan does not fit.\n",
    run_plan_cmd);

}  // namespace zerorl::cli
