// Engine: batched generation of G completions per prompt with the policy's
// KV cache -- the rollout phase of a GRPO step.
//
//   RolloutBatch b = engine.generate(policy, prompts, /*group_size=*/G, params);
//   b.samples[p * G + g]  is sample g of prompts[p]
//
// How it runs (continuous batching over a paged KV cache, model/kv_cache.h):
//   * The cache is a pool of blocks (EngineOptions::block_size positions
//     each) sized by kv_cache_bytes, or else by kv_cache_memory_fraction of
//     the device memory free when generate() starts, and never larger than
//     num_slots sequences of the longest prompt + max_new_tokens could use.
//     A slot (one of num_slots sequences decoded together) is a block table,
//     so memory follows the tokens in flight.
//   * The work is the queue of (prompt, sample) pairs, prompt-major.  Free
//     slots are filled from the front of the queue: a prompt is prefilled
//     ONCE into one slot, then its other samples get the prompt's blocks by
//     reference (KvCache::share_slot; the first token written into the
//     shared, partly filled last block copies it); with share_prefix off
//     they get private copies instead.  All prompts admitted in one round go
//     through one batched prefill call.  If fewer slots are free than the
//     group still needs, the prefilled slot is held back (not decoded) as the
//     group's template until its last sample gets a slot -- the template slot
//     then becomes that last sample -- so the prompt is still prefilled once.
//     Only when no sequence is running and the template cannot be copied
//     anywhere (num_slots < group_size, or a pool too small for a copy) does
//     the template slot decode itself and the prompt get prefilled again for
//     the rest of its group.
//   * A sequence is admitted only while the pool keeps one block free for
//     the next decode step of every sequence holding a slot; otherwise the
//     newest work waits.  If a decode step still lacks blocks, the sequences
//     admitted last are preempted (their blocks freed; if one sequence alone
//     still lacks them, a held template is dropped) and later resumed first
//     by recomputation: prompt ++ completion so far is prefilled again and
//     the next token drawn from its logits, from the sample's own stream, so
//     the completion does not change.  A pool that cannot hold one sequence
//     of the longest prompt + max_new_tokens - 1 tokens is an error.
//   * Every decode step feeds one token to each running slot (each at its own
//     position; prompts of different lengths mix freely).  A sample that
//     finishes frees its slot and blocks, which the next waiting sample takes
//     before the next step, so the batch stays full while work remains.
//   * Sampling and the stop checks run batched, as tensor ops on the
//     policy's device (rollout/batch_sampler.h: the host sampler's
//     arithmetic in fp64 over the fp32 logits), each sample drawing from its
//     own stream Rng(params.seed, params.step, prompt.id, sample_index,
//     RngPurpose::kSample): the host makes each row's uniform, the device
//     does the rest.  The tokens, log-probs and finishing flags (stop id,
//     possible stop string, bad logits) stay on the device.  The host looks
//     every EngineOptions::stop_check_every decode steps (and at once when a
//     sample reaches max_new_tokens, before a preemption, and for first
//     tokens at admission): one flag byte per running sample (the OR of its
//     flags since the last look), then the tokens and flags of the samples
//     that raised one, reach max_new_tokens, or are preempted.  Their
//     positions since the last look are walked in order with the finishing
//     rules below; a sample that finished before its last drawn token keeps
//     the tokens up to the finishing one and the rest are discarded
//     (RolloutStats::discarded_tokens).  Meanwhile a finished sample holds
//     its slot and takes blocks, so the waiting work starts later.  The
//     tokens, finish reasons, texts and routing are those of a look after
//     every step; the log-probs agree within 1e-5, not bit for bit: a
//     group's shared prompt is attended by one GEMM with a row per member
//     in the step (model/paged_attention.h), and a finished member still
//     decoding changes that row count (MKL gives 1-3 rows other bits).
//     A completion is therefore a function of (weights, prompt, params, ids)
//     only: not of num_slots, the pool size, preemptions, the other prompts,
//     their order, or how many ranks share the work.  (The model's logits for
//     a row can differ in the last bits between batch shapes -- GEMM
//     blocking -- so a token sitting exactly on a sampling boundary could in
//     principle flip; the reproducibility tests check this does not happen
//     in practice.)
//
// Behaviour log-probs: completion token t gets
//   logp[t] = log_softmax(logits_t / T)[token_t]      (T = params.temperature; 1 if greedy)
// from the full tempered distribution, not the top-k/top-p truncated one
// (what verl/TRL record).  The trainer recomputes the same quantity by
// teacher forcing: CausalLM::logprobs(prompt ++ completion) with
// LogprobOptions::temperature = T.  Tested to agree within 1e-5 in fp32.
//
// For the learner, rollout/batch_tensors.h lays a RolloutBatch out as padded
// tokens/targets/masks/behaviour log-probs aligned with CausalLM::logprobs.
//
// Finishing (checked in this order after each sampled token):
//   1. the token is the end-of-text id or one of params.stop_token_ids
//      -> kEndOfText (the token is kept as the last completion token);
//   2. the completion text now contains a stop string -> kStopString (the
//      stop string is kept in `text`; bytes of the last token after the stop
//      string are cut from `text`, the token itself is kept).  Only a token
//      holding a stop string's last byte can complete one: the device flags
//      those, and the host appends the sample's new text and matches it then
//      (StopMatcher), so stop strings spanning tokens still work;
//   3. the completion has params.max_new_tokens tokens -> kLength.
//
// Fixed-shape decode steps and CUDA graphs: see EngineOptions::cuda_graphs
// and model/static_decode.h.  With them the Engine keeps the decoder between
// calls, and with keep_decode_cache its KV cache pool and graphs too
// (dropped when the geometry or the policy's weight storage changes).
//
// Threads: generate() runs on the calling thread (ATen ops may use the
// intra-op thread pool, with results independent of its size).  Each
// call allocates its KvCache pool on the policy's device and frees it on
// return (unless a static decoder keeps it, above); one Engine may serve
// several policies.  The policy must not be used by another thread during
// generate().  Only the flag bytes and the tokens named above (and, with
// record_routing, the [N, K] expert ids of each MoE layer) come back to the
// host; logits never do (but a row with bad logits, to name the error).
//
// Expert parallelism (a policy sharded by model/moe_ep.h, expert_grid()
// set): every forward is an exchange over the EP group, so generate() is a
// collective over that group.  The ranks run their own continuous batching
// (own prompts, own slots) and vote before each forward: a rank with nothing
// left joins each of its peers' remaining forwards with zero tokens
// (CausalLM::forward_idle) until every rank is done.  A rank's completions
// do not depend on its peers' work (the exchange routes each token to the
// same experts with the same weights), so they equal the unsharded ones up
// to the last bits of the expert GEMMs' row blocking.
//
// Errors (zerorl::Error): empty prompts, duplicate prompt ids, token ids
// outside the vocabulary, prompt + max_new_tokens beyond the model's
// max_position, invalid params, stop strings without a TokenText, NaN logits
// (naming the prompt id and sample), a KV cache pool too small for one
// sequence (naming rollout.kv_cache_gb).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "rollout/sampling.h"
#include "rollout/token_text.h"

namespace zerorl::model {
class CausalLM;
class StaticDecoder;
}  // namespace zerorl::model

namespace zerorl::rollout {

struct PromptInput {
  int64_t id = 0;               // stream coordinate; unique within one generate() call
  std::vector<int64_t> tokens;  // >= 1 token (the caller adds BOS if the model wants one)
};

enum class FinishReason { kStopString, kEndOfText, kLength };
// "stop" / "eos" / "length"
const char* finish_reason_name(FinishReason r);

struct RolloutSample {
  int64_t prompt_id = 0;
  int64_t sample_index = 0;  // g in [0, G)
  std::vector<int64_t> prompt_tokens;
  std::vector<int64_t> completion_tokens;  // >= 1 token
  std::vector<double> logp;                // behaviour log-prob of each completion token
  FinishReason finish = FinishReason::kLength;
  std::string text;  // completion text, valid UTF-8 (see "Finishing"); empty without a TokenText
  // With EngineOptions::record_routing: the routed experts each token was
  // sent to while it was run through the policy (prefill or decode), so the
  // learner can check -- or replay -- the generator's routing.  routing[t]
  // holds the num_moe_layers * top_k expert ids of token t of
  // prompt ++ completion (layer-major, each layer's ids in the router's
  // order, best first), for t < prompt_length() + completion_length() - 1:
  // the last completion token is never fed back.  Empty otherwise.
  std::vector<std::vector<int32_t>> routing;

  int64_t prompt_length() const { return static_cast<int64_t>(prompt_tokens.size()); }
  int64_t completion_length() const { return static_cast<int64_t>(completion_tokens.size()); }
};

// Throughput accounting of one generate() call (wall-clock; device work is
// synchronised by the host copy of the logits, so the times are real).
struct RolloutStats {
  int64_t num_samples = 0;
  int64_t num_slots = 0;
  int64_t num_prefills = 0;      // prompt prefills (== number of prompts unless num_slots < G)
  int64_t prefill_tokens = 0;    // prompt tokens run through prefill
  int64_t decode_tokens = 0;     // tokens run through decode steps
  int64_t generated_tokens = 0;  // completion tokens kept (= decode_tokens + first tokens from
                                 // prefill logits - discarded_tokens)
  // Tokens decoded after their sample had finished, before the host looked
  // (stop_check_every > 1), and dropped.
  int64_t discarded_tokens = 0;
  int64_t stop_checks = 0;  // host looks at the finishing flags (syncs with the device)
  int64_t decode_steps = 0;
  // Expert parallelism: forwards this rank joined with no tokens of its own
  // while a peer of its EP group still had work (see "Expert parallelism").
  int64_t idle_forwards = 0;
  int64_t num_preemptions = 0;    // sequences preempted for lack of cache blocks
  int64_t recompute_tokens = 0;   // tokens prefilled again to resume them
  int64_t block_size = 0;         // KV cache positions per block
  int64_t cache_blocks = 0;       // blocks in the pool
  int64_t peak_cache_blocks = 0;  // most blocks in use at once
  int64_t cache_block_bytes = 0;  // device bytes per block (all layers)
  // Decode steps run at a fixed bucket size (EngineOptions::static_decode or
  // CUDA graphs), those of them replayed from a CUDA graph, graphs captured
  // in this call, and padding rows run.
  int64_t static_steps = 0;
  int64_t graph_replays = 0;
  int64_t graph_captures = 0;
  int64_t padded_rows = 0;
  double prefill_seconds = 0.0;  // prefill calls + cache copies + first-token sampling
  double decode_seconds = 0.0;   // decode calls + sampling + stop checks
  double total_seconds = 0.0;    // the whole generate() call

  double prefill_tokens_per_s() const {
    return prefill_seconds > 0 ? prefill_tokens / prefill_seconds : 0.0;
  }
  double decode_tokens_per_s() const {
    return decode_seconds > 0 ? decode_tokens / decode_seconds : 0.0;
  }
  // Mean fraction of the slots running per decode step (1 = always full).
  double occupancy() const {
    return decode_steps > 0 ? static_cast<double>(decode_tokens) /
                                  (static_cast<double>(decode_steps) * num_slots)
                            : 0.0;
  }
  // Cache memory: the pool reserved, and the most its blocks in use held.
  int64_t cache_bytes() const { return cache_blocks * cache_block_bytes; }
  int64_t peak_cache_bytes() const { return peak_cache_blocks * cache_block_bytes; }
  std::string to_string() const;  // one line for logs
};

struct RolloutBatch {
  int64_t group_size = 0;
  std::vector<RolloutSample> samples;  // prompt-major: samples[p * G + g]
  RolloutStats stats;
};

struct EngineOptions {
  int64_t num_slots = 64;  // sequences decoded together (KV cache slots)
  // End-of-text id that finishes a sample; nullopt: the policy config's
  // eos_token_id (if it has one).  -1: none.  Unless -1, the policy config's
  // eos_token_ids (all of generation_config.json's) finish a sample too.
  std::optional<int64_t> eos_token_id;
  // Fill RolloutSample::routing (costs one small device-to-host copy per
  // MoE layer and step; off by default).
  bool record_routing = false;
  // The KV cache pool (model/kv_cache.h): positions per block, and its size
  // in bytes; 0: kv_cache_memory_fraction of the device memory free when
  // generate() starts (CUDA: cudaMemGetInfo; CPU: MemAvailable).  Either
  // way capped at what num_slots sequences of the call's longest prompt +
  // max_new_tokens could use.
  int64_t block_size = 16;  // model::KvCache::kDefaultBlockSize, vLLM's default
  int64_t kv_cache_bytes = 0;
  double kv_cache_memory_fraction = 0.9;
  // The G samples of a prompt point at its prefilled blocks (true) or get
  // private copies of them (false: G times the prompt's cache memory).
  bool share_prefix = true;
  // Decode steps between the host's looks at the finishing flags (see "How
  // it runs"); 0: auto, 1 on the CPU (a look costs no device sync there,
  // and each step between looks can cost a finished sample's slot a token)
  // and kStopCheckEveryOnDevices elsewhere.  Other values give the same
  // completions up to last-bit differences of the logits (a finished group
  // member still decoding changes the row count of its group's shared-prompt
  // GEMM), which can flip a draw or an expert choice at a near tie.
  int64_t stop_check_every = 0;
  // CUDA graphs (model/static_decode.h): on a CUDA device, decode steps run
  // at fixed batch sizes (buckets up to model::kMaxDecodeBucket rows, the
  // rest padding) and are replayed from graphs captured once per bucket
  // (and, with keep_decode_cache, kept with the pool across calls: once per
  // weight version).
  // Where the policy does not qualify (model::decode_graphs_apply: fp32 or
  // fp16 MoE experts, expert parallelism) and above the largest bucket,
  // steps run eagerly.  Ignored on the CPU.  Off by default (vLLM's is on)
  // until the graphs have run on a GPU: their tests wait in
  // scripts/device_check.sh step 5.
  bool cuda_graphs = false;
  // Run the same fixed-shape step eagerly instead of CausalLM::decode, on
  // any device (the CPU's opt-in: it gathers the blocks where the CPU's
  // dynamic step reads them in place, so log-probs differ in the last bits;
  // tests; on a GPU, the graphs' comparison).  Not under expert parallelism.
  bool static_decode = false;
  // Keep the static decoder's KV cache pool (and graphs) between calls, so
  // graphs are captured once per weight version; off: released at the end
  // of each call (the memory goes back, e.g. to a colocated learner) and
  // captured again in the next.  The trainer keeps it on rollout-only ranks.
  bool keep_decode_cache = false;

  EngineOptions& slots(int64_t n) {
    num_slots = n;
    return *this;
  }
  EngineOptions& eos(int64_t id) {
    eos_token_id = id;
    return *this;
  }
  EngineOptions& routing(bool on) {
    record_routing = on;
    return *this;
  }
  EngineOptions& blocks(int64_t size) {
    block_size = size;
    return *this;
  }
  EngineOptions& cache_bytes(int64_t bytes) {
    kv_cache_bytes = bytes;
    return *this;
  }
  EngineOptions& sharing(bool on) {
    share_prefix = on;
    return *this;
  }
  EngineOptions& check_every(int64_t steps) {
    stop_check_every = steps;
    return *this;
  }
  EngineOptions& graphs(bool on) {
    cuda_graphs = on;
    return *this;
  }
  EngineOptions& static_step(bool on) {
    static_decode = on;
    return *this;
  }
  EngineOptions& keep_cache(bool on) {
    keep_decode_cache = on;
    return *this;
  }
};

// stop_check_every's auto value on a GPU: at most 7 tokens decoded past a
// finish per sample (< 1% of a 1k-token completion) for 1/8 of the syncs
// (not measured yet: no GPU lent; issue 15).
constexpr int64_t kStopCheckEveryOnDevices = 8;

// The options a recipe's `rollout` section sets: slots and the cache pool.
EngineOptions engine_options(const RolloutConfig& rollout);

class Engine {
 public:
  // `text` turns tokens into completion text and enables stop strings; it
  // may be null (then texts are empty and stop strings are refused).
  explicit Engine(EngineOptions options = {}, std::shared_ptr<const TokenText> text = nullptr);

  RolloutBatch generate(model::CausalLM& policy, const std::vector<PromptInput>& prompts,
                        int64_t group_size, const SamplingParams& params);

  const EngineOptions& options() const { return options_; }
  const std::shared_ptr<const TokenText>& text() const { return text_; }

 private:
  EngineOptions options_;
  std::shared_ptr<const TokenText> text_;
  std::shared_ptr<model::StaticDecoder> decoder_;  // made at the first call that uses one
};

}  // namespace zerorl::rollout
