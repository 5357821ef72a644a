#include <iostream>

#include "cli/command.h"
#include "cli/recipe_args.h"
#include "trainer/memory_plan.h"

namespace zerorl::cli {

static int run_plan_cmd(Args& args) {
  const long long world = args.int_value("--world-size", 1);
  const double gib = args.double_value("--gpu-memory", 0.0);
  const long long prompt = args.int_value("--prompt-tokens", 512);
  if (world < 1) throw UsageError("--world-size must be >= 1");
  if (gib < 0) throw UsageError("--gpu-memory must be >= 0");
  if (prompt < 1) throw UsageError("--prompt-tokens must be >= 1");
  Recipe recipe = recipe_from_args(args);
  args.finish();
  const MemoryPlanInput in = plan_input_from_recipe(recipe, world, gib, prompt);
  const MemoryPlan plan = plan_memory(in);
  std::cout << in.model.summary() << "; " << world << " ranks, "
            << (in.param_bytes == 2 ? "bf16" : "fp32") << ", zero " << in.zero
            << ", parallel.expert " << in.expert_parallel << "\n"
            << plan.table() << "\n"
            << plan_traffic(in).table();
  return plan.fits ? 0 : 3;
}

ZR_REGISTER_COMMAND(
    plan, "per-rank memory plan of a training recipe, and whether it fits",
    "usage: zerorl plan RECIPE [key.sub=value ...] [--world-size N] [--gpu-memory GIB]\n"
    "                   [--prompt-tokens N]\n"
    "\n"
    "Prints, per rank, the bytes of parameters, fp32 master weights, AdamW moments,\n"
    "gradients, the reference model, activations of one micro-batch (with and\n"
    "without activation checkpointing), the log-prob logits chunk and the rollout\n"
    "KV cache, and whether the peak fits --gpu-memory (GiB; 0: not checked).  The\n"
    "model's shapes come from policy.init (a Hugging Face folder or config.json, or\n"
    "a policy file); no weights are read.  Reads policy.dtype, train.zero,\n"
    "parallel.expert (routed experts split over that many ranks), train.micro_batch,\n"
    "train.activation_checkpointing, rollout.num_slots and sampling.max_new_tokens.\n"
    "--prompt-tokens is the prompt length assumed (default 512).\n"
    "\n"
    "Then the bytes each rank sends per training step, an estimate (ring\n"
    "collectives, uniform routing, rows at full length): the expert-parallel\n"
    "all-to-alls of the learner and the rollout (dispatch + combine, forward and\n"
    "backward: tokens x top-k x hidden x dtype x (X-1)/X per MoE layer), and the\n"
    "gradient all-reduces / reduce-scatters (dense over all ranks, experts over\n"
    "their shard's replicas) and ZeRO's parameter all-gathers per optimizer step.\n"
    "Exit status 3 when the plan does not fit.\n",
    run_plan_cmd);

}  // namespace zerorl::cli
