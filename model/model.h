// CausalLM: the policy, one transformer for every family of model/config.h
// (DeepSeek-V2/V3, Qwen2/3-MoE, OLMoE, dense Qwen2/3, Llama), matched to HF.
//
//   tokens_BT -> embed -> L x [ x + attn(rmsnorm(x)); x + mlp_or_moe(rmsnorm(x)) ]
//             -> rmsnorm -> (lm_head | tied embedding)
//
// Legend: B batch, T time, D hidden, V vocabulary, S cache slots, L layers,
// E routed experts, K top-k, N flattened tokens.
//
// Parameters are registered as a torch::nn::Module tree whose dotted names
// are Hugging Face's ("model.layers.0.self_attn.q_a_proj.weight"), except
// that routed experts are stacked for the grouped GEMM:
//   model.layers.i.mlp.experts.gate_proj  [E, F, D]
//   model.layers.i.mlp.experts.up_proj    [E, F, D]
//   model.layers.i.mlp.experts.down_proj  [E, D, F]
// The aux-loss-free balancing bias is a buffer
//   model.layers.i.mlp.gate.e_score_correction_bias [E] (fp32)
// that is part of the weights (saved/loaded) but not a trainable parameter.
// model/weights.h maps these to HDF5 and to Hugging Face per-expert names.
//
// Precision: parameters in any float dtype (to(dtype) as usual); norms,
// router scores and log-probs are computed in fp32 as HF does.
//
// Threads: a CausalLM may be used for forward passes from one thread at a
// time (it accumulates expert-load statistics).
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/logprob/logprob.h"
#include "model/config.h"
#include "model/kv_cache.h"

namespace zerorl {
class ProcessGrid;  // core/process_grid.h
}

namespace zerorl::model {

class Backbone;  // model/backbone.h (internal)
class MoeLayer;  // model/moe_block.h (internal)
class Linear;    // model/layers.h (internal)

struct ForwardOptions {
  // bool [B,T]; undefined = every token valid.  Invalid tokens (padding) are
  // still computed (causal attention keeps them from affecting valid tokens
  // before them when padding is on the right) but are excluded from the
  // expert-load statistics and the sequence-wise balance loss.
  at::Tensor valid_BT;
  // Add this forward's routed-token counts to the expert-load accumulator
  // (the trainer sets it for the policy-update forward only).
  bool record_expert_load = false;
  // Keep each MoE layer's chosen experts for inspection via last_routing()
  // (rollout routing records, tests, diagnostics).  Full forwards: int64
  // [B*T, K] per layer; prefill/decode: [N, K], one row per new token.  Off:
  // no extra work at all.
  bool record_routing = false;
  // Routing replay (train.routing_replay): per MoE layer, in layer order, the
  // experts each token is sent to instead of the router's top-k: int64
  // [B*T, K], row b*T + t, in last_routing()'s format.  Gates come from the
  // current router for those experts.  Empty = route normally.  Full
  // forwards only.  last_routing() still records the router's own choice.
  std::vector<at::Tensor> replay_routing;
  // Activation checkpointing per decoder layer (train.activation_checkpointing):
  // with grad mode on, each layer keeps only its input and is recomputed in
  // backward; gradients equal the plain path's (tests/model/checkpoint_test.cpp).
  bool activation_checkpointing = false;
};

// One decode step at fixed shapes (model/static_decode.h fills these): R
// rows, each row's block table padded to M blocks; every tensor int64 on the
// model's device.  Rows past the real ones are padding: any valid token,
// position 0, written to and reading only the cache's scratch block.
struct StaticDecodeInputs {
  at::Tensor tokens_R;        // [R] each row's new token
  at::Tensor pos_R;           // [R] its position (the slot's length before the step)
  at::Tensor write_R;         // [R] the pool row (block * bs + offset) its K/V go to
  at::Tensor blocks_RM;       // [R*M] block tables, padded with the scratch block
  int64_t max_blocks = 0;     // M: positions attended are 0..M*bs-1, masked after pos_R
  at::Tensor cos_PH, sin_PH;  // CausalLM::rope_tables(M * bs), indexed by pos_R
};

struct LogprobOutput {
  at::Tensor logp_BT;     // fp32 (fp64 for fp64 models): log p(targets_BT[b,t] | tokens_BT[b, <=t])
  at::Tensor entropy_BT;  // defined only with LogprobOptions::with_entropy
  at::Tensor aux_loss;  // scalar: alpha-weighted sequence-wise balance loss summed over MoE layers;
                        // 0 if alpha == 0
};

struct ParamReport {
  int64_t total = 0;  // every trainable parameter (tied embedding counted once)
  int64_t active_per_token =
      0;  // parameters one token touches: all but the (E - K) unused routed experts per MoE layer
  int64_t embedding = 0;       // embed_tokens (+ lm_head when untied)
  int64_t routed_experts = 0;  // all routed-expert weights
  std::string to_string() const;
};

class CausalLM : public torch::nn::Module {
 public:
  // Random initialisation as HF does (normal(0, init_std) for matrices,
  // ones for norms, zeros for biases and the balancing bias), drawn from the
  // stream stream_seed(cfg.seed, 0, 0, 0, kInit): same config -> same bits.
  // random_init = false leaves the weights uninitialised (about to be loaded).
  // The model is built in fp32 on the CPU; use to(device/dtype) afterwards.
  explicit CausalLM(const ModelConfig& cfg, bool random_init = true);
  const ModelConfig& config() const { return cfg_; }

  // ---- (a) full sequences: training and teacher-forced scoring ----
  // Final hidden states [B,T,D] (after the last RMSNorm).  `aux_loss` (if not
  // null) receives the balance loss scalar.
  at::Tensor hidden_states(const at::Tensor& tokens_BT, const ForwardOptions& fo = {},
                           at::Tensor* aux_loss = nullptr);
  // log p of given next tokens via kernels::chosen_logprob: the [B*T, V]
  // logits are never materialised beyond one chunk.  targets_BT int64, any
  // value in [0, V) (use any valid id at padded positions and mask later).
  LogprobOutput logprobs(const at::Tensor& tokens_BT, const at::Tensor& targets_BT,
                         const kernels::LogprobOptions& lo = {}, const ForwardOptions& fo = {});
  // Full logits [B,T,V] in the parameters' dtype (tests, small evaluations).
  at::Tensor logits(const at::Tensor& tokens_BT, const ForwardOptions& fo = {});
  // The output projection [V,D] (lm_head.weight, or the embedding when tied).
  at::Tensor output_weight() const;
  // Chosen experts per MoE layer of the last forward, prefill or decode run
  // with record_routing (int64 [N, K] on the model's device, in layer order;
  // each row in the router's order, best first); untouched by calls without
  // record_routing.  Rows: full forwards b*T + t; prefill the new tokens in
  // call order (all of slots[0]'s, then slots[1]'s, ...); decode row i for
  // slots[i].
  const std::vector<at::Tensor>& last_routing() const { return last_routing_; }

  // ---- (b) incremental decoding with a KV cache (runs without autograd) ----
  // A paged cache on the model's device and dtype (model/kv_cache.h);
  // num_blocks 0: enough blocks for every slot at max_len.
  KvCache make_cache(int64_t num_slots, int64_t max_len,
                     int64_t block_size = KvCache::kDefaultBlockSize, int64_t num_blocks = 0,
                     bool scratch_block = false) const;
  // Append each token list to its slot (at the slot's current length; usually
  // 0 after reset) and return the logits of each list's last token [N, V]
  // (fp32).  Lists may have different lengths (>= 1 each).
  // fo: only record_routing applies (valid_BT / record_expert_load throw).
  at::Tensor prefill(KvCache& cache, const std::vector<int64_t>& slots,
                     const std::vector<std::vector<int64_t>>& tokens,
                     const ForwardOptions& fo = {});
  // One new token per listed slot, each at its own position length(slot);
  // returns next-token logits [S, V] (fp32), row i for slots[i].
  // tokens_S: int64 [S], on any device.  On the model's device (not the CPU)
  // it is used in place, never read back to the host, so its ids are not
  // checked (the rollout engine's sampled tokens stay on the device).
  at::Tensor decode(KvCache& cache, const std::vector<int64_t>& slots, const at::Tensor& tokens_S,
                    const ForwardOptions& fo = {});

  // ---- (c) one decode step at fixed shapes (model/static_decode.h) ----
  // Next-token logits [R, V] (fp32) of the rows of `in`, writing their K/V
  // into `cache` at in.write_R; the cache's slots and lengths are the
  // caller's (it does not advance them).  Shapes depend on R and M only, and
  // nothing is read back to the host or allocated by a size known only on the
  // device, so a CUDA graph can capture it.  Attention gathers the M blocks
  // of every row (model/attention.cpp's path), masked after pos_R.
  at::Tensor decode_static(KvCache& cache, const StaticDecodeInputs& in,
                           const ForwardOptions& fo = {});
  // Rotary cos/sin of positions 0..n-1 on the model's device ([n, R/2] each,
  // the parameters' dtype): decode_static indexes them by position.
  std::pair<at::Tensor, at::Tensor> rope_tables(int64_t n) const;

  // ---- expert load and the aux-loss-free balancing bias ----
  // MoE layer indices (into 0..num_layers-1), in order; rows of expert_load_LE.
  const std::vector<int64_t>& moe_layers() const { return moe_layers_; }
  // Routed-token counts accumulated by forwards with record_expert_load since
  // the last reset: int64 [num_moe_layers, E] on the CPU.  (Data-parallel:
  // allreduce it before update_balance_bias so all ranks agree.)
  at::Tensor expert_load_LE() const;
  void reset_expert_load();
  // DeepSeek-V3 aux-loss-free update, per MoE layer:
  //   bias_E += gamma * sign(mean(load_E) - load_E)
  // (no-op when gamma == 0 or the config has no score bias).  Call after each
  // optimizer step with the (allreduced) load; gamma defaults to the config's.
  void update_balance_bias(const at::Tensor& load_LE);
  void update_balance_bias(const at::Tensor& load_LE, double gamma);

  // ---- parallel plans (model/moe_ep.h applies them) ----
  // MoE layer m (0-based, in moe_layers() order) and its replacement by a
  // plan's layer with the same submodule names.
  MoeLayer& moe_layer(size_t m);
  void replace_moe_layer(size_t m, std::shared_ptr<MoeLayer> layer);
  // The grid the expert-parallel plan sharded this model over, or null
  // (every routed expert on this rank).  Set by apply_expert_parallel; the
  // grid must outlive the model.  When set, every forward (full, prefill,
  // decode) is a collective over grid->ep_comm(): the ranks of an EP group
  // run the same number of forwards in the same order, and a rank with no
  // tokens of its own joins with forward_idle().
  const ProcessGrid* expert_grid() const { return grid_; }
  void set_expert_grid(const ProcessGrid* grid) { grid_ = grid; }
  // One forward's exchanges with no tokens of this rank (its experts still
  // serve the peers' tokens); no autograd.  A no-op without a grid.
  void forward_idle();

  // ---- weights ----
  // Every tensor that is part of the weights: parameters and the balancing
  // bias buffers, by their dotted names, in registration order.
  std::vector<std::pair<std::string, at::Tensor>> named_weights() const;
  ParamReport param_report() const;

 private:
  at::Tensor run_backbone(const at::Tensor& tokens_BT, const ForwardOptions& fo,
                          at::Tensor* aux_loss);
  // tokens_dev_N (optional): the new tokens already on the device, one per
  // slot (decode); `tokens` then only gives the counts.
  at::Tensor extend(KvCache& cache, const std::vector<int64_t>& slots,
                    const std::vector<std::vector<int64_t>>& tokens, const ForwardOptions& fo,
                    const at::Tensor& tokens_dev_N = {});

  ModelConfig cfg_;
  std::shared_ptr<Backbone> backbone_;
  std::shared_ptr<Linear> lm_head_;  // null when tied
  std::vector<int64_t> moe_layers_;
  at::Tensor load_LE_;  // int64 CPU accumulator
  std::vector<at::Tensor> last_routing_;
  const ProcessGrid* grid_ = nullptr;
};

}  // namespace zerorl::model
