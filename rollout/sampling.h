// Token sampling on the host: SamplingParams and the sampler that turns one
// row of fp32 logits into a token and its behaviour log-probability.  The
// engine draws whole batches on the device with rollout/batch_sampler.h,
// which does this file's arithmetic as tensor ops and is tested against it;
// this scalar sampler is that reference (and names a bad row's error).
//
// Legend: V vocabulary.
//
// Why the host, in fp64: a completion must not depend on batch size, batch
// composition or the number of ranks.  Each sample draws from its own stream
// Rng(seed, step, prompt_id, sample_index, RngPurpose::kSample) and the draw
// is a pure function of (its logits row, its stream), computed in double
// precision by one scalar code path whatever the device or batch.
//
// The distribution sampled (temperature T > 0):
//   p_v      = softmax(logits / T)_v                     (fp64 over fp32 logits)
//   top_k    : keep the k most probable ids (0 = off)
//   top_p    : of those, keep the smallest most-probable-first prefix whose
//              renormalised mass reaches top_p (1 = off; always >= 1 id)
//   draw     : one uniform u from the stream, inverted through the cumulative
//              mass of the kept ids in order (prob descending, id ascending)
// Ties are broken by the lower id, so the kept set is deterministic.
// With no truncation (top_k = 0, top_p = 1) the walk is in id order and no
// sort happens.
//
// Greedy (temperature == 0): argmax, lowest id on ties; no random draw.
//
// Behaviour log-prob (what the trainer's importance ratio divides by):
//   logp = log_softmax(logits / T)[token]  -- the full tempered model
// distribution, NOT the top-k/top-p truncated one.  This is what verl and TRL
// record, and what the trainer recomputes by teacher forcing at the same
// temperature (model::CausalLM::logprobs with LogprobOptions::temperature =
// T).  For greedy decoding T = 1 is used: logp = log_softmax(logits)[argmax].
//
// Errors: NaN or +-inf-only logits throw zerorl::Error (the caller adds which
// sample); invalid params throw from validate() naming the field.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.h"

namespace zerorl {
class ConfigNode;
}

namespace zerorl::rollout {

struct SamplingParams {
  double temperature = 1.0;      // 0: greedy
  double top_p = 1.0;            // (0, 1]; 1: off
  int64_t top_k = 0;             // >= 0; 0: off
  int64_t max_new_tokens = 256;  // >= 1; a completion is cut at exactly this many tokens
  // Stop when the decoded completion text contains one of these (matched on
  // bytes, across token boundaries).  The stop string is kept in the text.
  std::vector<std::string> stop_strings;
  // Stop after sampling one of these ids (kept as the last completion token).
  // The engine also stops at its end-of-text id (EngineOptions::eos_token_id)
  // unless that is -1.
  std::vector<int64_t> stop_token_ids;
  uint64_t seed = 0;  // stream coordinates: Rng(seed, step, prompt_id, sample_index, kSample)
  uint64_t step = 0;

  bool greedy() const { return temperature == 0.0; }
  // Temperature the behaviour log-probs are taken at (1 for greedy).
  double logprob_temperature() const { return greedy() ? 1.0 : temperature; }

  // Throws zerorl::Error naming the offending field (prefixed by `where`).
  void validate(const std::string& where = "sampling") const;

  // From a recipe section, e.g. `rollout.sampling`:
  //   temperature: 1.0
  //   top_p: 1.0
  //   top_k: 0
  //   max_new_tokens: 256
  //   stop_strings: ["</answer>"]
  //   stop_token_ids: []
  // `seed` and `step` are not recipe keys: the caller sets them (training
  // from train.seed and the step, evaluation from eval.seed), so a `seed`
  // key is refused naming train.seed.  Validated; errors name the key and
  // its position in the recipe.
  static SamplingParams from(const ConfigNode& node);
};

// The recipe's `rollout` section: the engine's decode slots, its paged KV
// cache pool (rollout/engine.h, model/kv_cache.h) and how each token is drawn.
struct RolloutConfig {
  int64_t num_slots = 64;  // sequences decoded at once (rollout::EngineOptions::slots)
  // Pool size in GiB (2^30 bytes); 0: kv_cache_memory_fraction of the
  // device memory free when a rollout starts.  Either way no larger than
  // num_slots sequences of the longest prompt + max_new_tokens can use.
  double kv_cache_gb = 0.0;
  double kv_cache_memory_fraction = 0.9;  // (0, 1]
  int64_t kv_block_size = 16;             // token positions per cache block
  // Decode steps between the host's looks at the finishing flags
  // (rollout::EngineOptions::stop_check_every); 0: auto (1 on the CPU, 8 on a GPU).
  int64_t stop_check_every = 0;
  // Decode steps replayed from CUDA graphs at fixed batch sizes on a GPU
  // (rollout::EngineOptions::cuda_graphs); ignored on the CPU.  Off until
  // the graphs have run on a GPU (scripts/device_check.sh step 5).
  bool cuda_graphs = false;
  SamplingParams sampling;  // rollout.sampling

  static RolloutConfig from(const ConfigNode& node);
};

struct SampledToken {
  int64_t id = -1;
  double logp = 0.0;  // behaviour log-prob, see the header comment
};

// Reusable buffers so the sampler does not allocate per token.  One per
// thread.
struct SamplerScratch {
  std::vector<double> z;       // tempered logits, then probabilities
  std::vector<int32_t> order;  // ids of the kept set, most probable first
};

// Draw one token from logits_V[0..V) (fp32, contiguous) under `params`,
// consuming the stream `rng` (exactly one uniform per call unless greedy).
SampledToken sample_token(const float* logits_V, int64_t V, const SamplingParams& params, Rng& rng,
                          SamplerScratch& scratch);

// The probabilities the sampler draws from (after temperature, top-k, top-p
// and renormalisation), for tests and diagnostics: a [V] fp64 vector summing
// to 1 (greedy: one-hot at the argmax).
std::vector<double> sampling_distribution(const float* logits_V, int64_t V,
                                          const SamplingParams& params);

}  // namespace zerorl::rollout
