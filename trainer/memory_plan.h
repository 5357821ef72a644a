// The memory plan: bytes per rank of everything a GRPO run holds on its
// device, computed from the model's shapes and the recipe alone (no
// weights are read), and whether it fits the device.  `zerorl plan` prints
// it; `zerorl train` runs it before loading weights and stops with the
// table when it does not fit.
//
// What is counted (P = parameters, b = bytes of policy.dtype, N = world size,
// Z = train.zero, X = parallel.expert, the expert-parallel degree):
//   parameters       P_dense * b + P_experts * b / X
//   master weights   4 P / (Z >= 1 ? N : 1) when policy.dtype is bf16, else 0
//   optimizer        AdamW moments, 8 P / (Z >= 1 ? N : 1)
//                    (ZeRO shards a dense parameter's state over N ranks,
//                    an expert's over the N / X replicas of its shard)
//   gradients        P * b / (Z >= 2 ? N : 1), plus the gradient-sync buffers:
//                    a full copy (Z = 0, 1; trainer/grad_sync.h) or one
//                    25 MiB bucket (Z = 2, reduce-scatter)
//   reference        P * b (the same sharding of experts), when loss.beta > 0
//   activations      per micro-batch of train.micro_batch rows x seq_len
//                    positions: the tensors autograd keeps, summed over
//                    layers (activation_bytes_per_token below); with
//                    activation checkpointing one [T, D] input per layer plus
//                    one layer's activations recomputed in backward
//   logits chunk     kernels::chosen_logprob's working set: chunk_tokens x V
//                    fp32 logits, probabilities and their gradient
//   KV cache         rollout.num_slots x (prompt_tokens + max_new_tokens)
//                    per layer (MLA: the latent and rotary key; GQA: K and V),
//                    or rollout.kv_cache_gb when that is set and smaller (the
//                    paged pool; with kv_cache_gb 0 the pool takes a share of
//                    the memory free at rollout time, at most this much)
// The rollout and the update never overlap (the engine frees its cache on
// return), so the peak is the static part plus the larger of the two.
//
// Activations are an accounting of the tensors this implementation saves for
// backward (model/attention.cpp with SDPA, the MoE kernels' saved inputs),
// checked against the tracking CPU allocator's peaks within 15%
// (tests/trainer/memory_plan_test.cpp, docs/PERFORMANCE.md).
//
// The traffic plan (plan_traffic below): bytes each rank sends per training
// step, an estimate from the same shapes.  Every collective is costed as a
// ring (what NCCL does at these sizes): all-reduce 2 (n-1)/n S, reduce-scatter
// and all-gather (n-1)/n S for a buffer of S bytes over n ranks.
//   EP all-to-all     per MoE layer and forward, dispatch and combine each
//                     send tokens x K x D x b x (X-1)/X (uniform routing: the
//                     1/X of the rows bound for this rank's own experts stay
//                     local), plus the expert ids (int64, forward only); the
//                     backward sends both gradients back the same way.
//                     Learner tokens: rows per rank x (prompt + max_new_tokens)
//                     (forwards are cut to their longest row, so an upper
//                     bound); forwards per step: the policy's per epoch (twice
//                     with activation checkpointing), the reference's (loss.beta
//                     > 0) and the recomputed old log-probs' (train.old_logprobs);
//                     backwards: one per epoch.  Rollout: every prompt and
//                     generated token once, forward only (at most: completions
//                     stop early).
//   gradients        per optimizer step (epochs x minibatches a step): dense
//                    gradients over all N ranks, the rank's expert gradients
//                    over the N / X replicas of its shard only; all-reduce at
//                    Z = 0, 1, reduce-scatter at Z = 2
//   parameters       Z >= 1: the updated shards all-gathered, dense over N,
//                    experts over N / X
// Left out: the all-to-alls' row counts (X int64 each), the rollout's vote
// before each forward, norms, metrics and expert loads (a few bytes each).
//
// Legend: T positions per row, D width, H heads, F expert width, E experts,
// K top-k, V vocabulary, L MoE layers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <c10/core/Device.h>

#include "model/config.h"

namespace zerorl {

class Recipe;

struct MemoryPlanInput {
  model::ModelConfig model;
  int64_t world_size = 1;
  int64_t param_bytes = 4;      // policy.dtype: fp32 4, bf16 2
  int64_t zero = 0;             // train.zero: 0 | 1 | 2
  int64_t expert_parallel = 1;  // parallel.expert: routed experts sharded over this many ranks
  bool reference = true;        // loss.beta > 0
  bool activation_checkpointing = false;
  int64_t micro_batch = 1;           // rows per forward/backward
  int64_t seq_len = 1;               // teacher-forced positions per row
  int64_t kv_slots = 0, kv_len = 0;  // rollout.num_slots, prompt + max_new_tokens
  int64_t kv_cache_bytes = 0;        // rollout.kv_cache_gb in bytes (0: not set)
  int64_t logits_chunk_tokens = 1024;
  double gpu_memory_bytes = 0;  // 0: unknown (fits is then true)
  // The traffic plan's step: completions per rank (prompts_per_step x
  // group_size / world), passes and optimizer steps, extra forwards.
  int64_t rows_per_step = 1;
  int64_t epochs = 1, minibatches = 1;
  bool old_logprobs_recomputed = false;  // the learner recomputes the old log-probs
};

struct MemoryPlanRow {
  std::string name;
  int64_t bytes = 0;
  std::string note;
};

struct MemoryPlan {
  std::vector<MemoryPlanRow> rows;  // in the order above
  int64_t static_bytes = 0;         // parameters .. reference
  int64_t learner_bytes = 0;        // activations + logits chunk
  int64_t rollout_bytes = 0;        // KV cache
  int64_t total_bytes = 0;          // static + max(learner, rollout)
  int64_t activations_plain = 0;    // per micro-batch, without checkpointing
  int64_t activations_checkpointed = 0;
  double gpu_memory_bytes = 0;
  bool fits = true;
  std::string table() const;                   // human-readable, one row per line, GiB
  int64_t row(const std::string& name) const;  // bytes of a row (0 when absent)
};

// Bytes one rank sends per training step (see "The traffic plan" above).
struct TrafficPlan {
  std::vector<MemoryPlanRow> rows;  // EP all-to-all (learner, rollout), gradients, parameters
  int64_t total_bytes = 0;
  std::string table() const;
  int64_t row(const std::string& name) const;
};
TrafficPlan plan_traffic(const MemoryPlanInput& in);

// Parameters of a model from its config alone (equal to
// CausalLM::param_report().total; tests pin it).  experts: routed-expert
// weights among them.
struct ParamCount {
  int64_t total = 0, experts = 0;
};
ParamCount count_parameters(const model::ModelConfig& cfg);

// Bytes autograd keeps per token (one row position) for one forward of the
// whole model, without checkpointing; and for one decoder layer (the
// largest), which checkpointing recomputes.
int64_t activation_bytes_per_token(const model::ModelConfig& cfg, int64_t dtype_bytes);
int64_t layer_activation_bytes_per_token(const model::ModelConfig& cfg, int64_t dtype_bytes);

MemoryPlan plan_memory(const MemoryPlanInput& in);

// The plan's input from a recipe (read from a copy: the recipe's keys are
// not marked read).  The model's shapes come from policy.init's config
// (config.json of a Hugging Face folder, a config.json file itself, or a
// policy file's).  policy.dtype, train.zero and parallel.expert are read
// when present (fp32, 0 and 1 otherwise; parallel.expert must divide the
// world size and the policy's routed experts, an error naming its line);
// prompt_tokens is the prompt length the plan assumes (the recipe does not
// bound it).  micro_batch = 0 in the recipe means a whole minibatch per rank.
MemoryPlanInput plan_input_from_recipe(const Recipe& recipe, int64_t world_size,
                                       double gpu_memory_gib, int64_t prompt_tokens);

// Total memory of `device` (CUDA: cudaMemGetInfo's total); 0 on the CPU
// (host memory is not planned).
double device_memory_bytes(const c10::Device& device);

// The largest micro-batch (rows, at most `rows`) whose plan fits; 0 when not
// even one row fits.  Used as train.micro_batch's default on a GPU.
int64_t largest_fitting_micro_batch(MemoryPlanInput in, int64_t rows);

}  // namespace zerorl
