// The R1-Zero training loop: GRPO steps over a policy, colocated (every
// rank rolls out its whole groups and learns; gradients are summed across
// ranks through Comm) or, with rollout.mode: disaggregated, split into
// rollout ranks that only generate and learner ranks that only learn
// (trainer/disaggregated.h: the schedule, the staleness bound, the weight
// broadcast; a rollout rank's run_train returns once it has generated its
// last batch, with steps_done the batches generated).
//
// One step, as run_train() reads (phases are named functions in
// grpo_trainer.cpp):
//   sample (rollout -> reward [-> more rounds: dynamic sampling]) ->
//   reference log-probs -> shape rewards (the KL penalty, loss.kl_in =
//   reward) -> advantages -> update (policy_step per optimizer step:
//   gradient sync, AdamW, MoE balancing biases) -> log -> evaluate ->
//   checkpoint
//
// Dynamic sampling (DAPO; advantage.dynamic_sampling: true,
// advantage.max_sampling_rounds: N, default 4, the first round included):
// groups whose rewards are all equal are dropped and each rank rolls out
// and scores another prompts_per_step / world_size prompts per round until
// prompts_per_step groups with a signal are kept over all ranks, or N
// rounds were drawn (the step then trains on what it kept; none: the update
// is skipped).  The kept groups are the first in global stream order, so
// they do not depend on the world size; one rank may hold more of them
// than another.  Each round's counts are all-gathered, so every rank takes
// the same rounds and its prompt source advances alike (the checkpoint's
// data cursor covers every round drawn).  In disaggregated mode the rollout
// ranks draw the rounds and choose the kept groups by the same rule, and
// each learner trains its share of the kept batch (trainer/disaggregated.h):
// the same groups, trained alike.
//
// Metrics (metrics.jsonl, reduced over ranks): reward/*, response/*,
// advantage/zero_spread_frac and rollout/* describe every completion drawn
// (every round, before any KL-in-reward penalty); loss/*, optim/* and
// reward/kl_penalty (loss.kl_in = reward) the update's completions;
// learner/tokens the tokens teacher-forced per pass; with dynamic sampling,
// dynamic/{rounds, groups_drawn, groups_with_signal, groups_kept,
// rank_groups_min, rank_groups_max, short_steps_total}.  "time" holds rank
// 0's wall-clock seconds: rollout, reward, reference (packing + reference
// log-probs), update = old_logprobs + fwd_bwd + grad_sync + optimizer (+ MoE
// bias update), learner = reference + update, learner_cpu (rank 0's process
// CPU seconds in those two phases), and rollout_tokens_per_s,
// learner_tokens_per_s (learner/tokens / learner).
//
// Recipe sections: read by read_train_recipe() (trainer/train_recipe.h, the
// section list), each component validating its own; unknown keys fail.
//
// Determinism: same recipe, seed and world size -> same bits; the prompt
// stream and every sample's random stream do not depend on the world size.
// Resume continues bit-identically (weights, AdamW state, data cursor, step,
// reference model and balancing biases are in the checkpoint; sampling
// streams are derived from (seed, step, prompt, sample)).  A checkpoint may
// be resumed on another world size (and ZeRO stage): the optimizer slices of
// every rank file are resharded (optimizer.h) and the data stream, sampling
// streams and schedule continue; the update then differs from the
// uninterrupted run only by the order of the gradient sums.
//
// Stopping (trainer/stop_signal.h): at the end of every step the ranks
// agree (one all-reduce) whether any of them was asked to stop; if so each
// writes the step's checkpoint (unless it just did) and run_train returns
// with stopped_by set, skipping the final evaluation and summary.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace zerorl {

class Recipe;
class Comm;
class ConfigNode;

struct TrainConfig {
  long steps = 100;
  long prompts_per_step = 8;  // global, whole groups; a multiple of the world size
  long group_size = 8;        // G
  long epochs = 1;            // mu: passes over each batch
  long minibatches = 1;       // optimizer steps per pass; divides prompts_per_step
  // Completions per forward/backward (0: on a GPU, the largest power of two
  // whose memory plan fits the device, trainer/memory_plan.h; on the CPU a
  // whole minibatch).  With micro-batches, rows go longest first and each
  // forward is cut to its longest row, so they also cut padding (reference
  // and recomputed old log-probs are chunked the same way).
  long micro_batch = 0;
  // Recompute each decoder layer in backward instead of keeping its
  // activations (model::ForwardOptions::activation_checkpointing).
  bool activation_checkpointing = false;
  // Rollout routing replay (trainer/routing_replay.h): the learner's old,
  // reference and policy forwards send each token to the experts the rollout
  // chose; the router still learns through the gates.  MoE policies only.
  bool routing_replay = false;
  // The old log-probs of the clipped ratio: the rollout's behaviour
  // log-probs, or recomputed by the learner before the first update of the
  // step; kAuto recomputes only when the batch is updated more than once
  // (epochs or minibatches > 1).  Recipe: auto | rollout | recompute.
  enum class OldLogprobs { kAuto, kRollout, kRecompute };
  OldLogprobs old_logprobs = OldLogprobs::kAuto;
  long ref_reset_every = 0;  // copy the policy into the reference every N steps (0: never)
  long sample_every = 5;     // write completions to samples.jsonl every N steps (0: never)
  long samples_per_log = 8;
  uint64_t seed = 1;  // sampling streams
  // ZeRO stage over the data-parallel group (trainer/shard_plan.h): 0 full
  // replicas, 1 sharded fp32 masters + AdamW moments, 2 also sharded
  // gradients.  Any stage gives the same update.
  long zero = 0;
  // Send gradient buckets during the last micro-batch's backward, as they
  // complete, instead of after it (trainer/grad_sync.h; PyTorch DDP's
  // default).  The same bits either way; off: every bucket after backward.
  bool overlap_grad_sync = true;
  static TrainConfig from(const ConfigNode& n);
  // Whether the update takes the rollout's log-probs as the old ones.
  bool old_logprobs_from_rollout() const {
    return old_logprobs == OldLogprobs::kRollout ||
           (old_logprobs == OldLogprobs::kAuto && epochs == 1 && minibatches == 1);
  }
};

struct TrainResult {
  long steps_done = 0;
  double wall_seconds = 0;
  std::map<std::string, double> first_eval, last_eval;  // empty when eval is off
  std::map<std::string, double> last_metrics;
  std::string run_dir;
  // Non-zero when a stop was requested (trainer/stop_signal.h): the signal's
  // number; the run ended after step steps_done with a checkpoint there.
  int stopped_by = 0;
};

// resume: "" (fresh run), "auto" (newest verifying checkpoint of this run,
// falling back past corrupt ones; fresh when there is none) or a checkpoint
// step directory.  A fresh run refuses a run directory that holds
// checkpoints unless overwrite is set (then the old run is removed; see
// trainer/run_dir.h).  Collective.
TrainResult run_train(Recipe& recipe, Comm& comm, const std::string& resume = "",
                      bool overwrite = false);

}  // namespace zerorl
