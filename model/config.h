// ModelConfig: the shape and behaviour of the policy model, one small struct
// per component, read from a recipe section or from a Hugging Face config.json.
//
// Every supported family is a configuration of the same building blocks
// (model/attention, model/moe_block, model/layers): no family has its own
// model code.  What differs, family by family (HF model_type):
//
// clang-format off
//   family       attn  q/k norm    biases          router                        shared expert  dense layers
//   deepseek_v3  MLA   -           attention_bias  sigmoid+bias, groups by       n_shared       i < first_k_dense_replace
//                                                  top-2 sum, normalised
//   deepseek_v2  MLA   -           attention_bias  softmax, greedy or groups     n_shared       i < first_k_dense_replace
//                                                  by max, x routed_scaling
//   qwen2_moe    GQA   -           q/k/v           softmax top-k, norm_topk_prob sigmoid-gated  mlp_only_layers, sparse step
//   qwen3_moe    GQA   per head    attention_bias  softmax top-k, norm_topk_prob none           mlp_only_layers, sparse step
//   olmoe        GQA   full width  attention_bias  softmax top-k, norm_topk_prob none           none (experts intermediate_size wide)
//   qwen2        GQA   -           q/k/v           -                             -              all
//   qwen3        GQA   per head    attention_bias  -                             -              all
//   llama        GQA   -           attention_bias, -                             -              all
//                                  mlp_bias
// clang-format on
// ("attention_bias": q/k/v/o for GQA; q_a/kv_a/o for MLA.)  RoPE: GQA
// families rotate halves, deepseek_v2 interleaved pairs, deepseek_v3 per
// rope_interleave; scaling default | linear | yarn | llama3.  Sliding-window
// attention, qk clipping (olmoe clip_qkv) and partial rotary are rejected.
//
// Recipe section (all keys optional; the defaults ARE the `tiny` model used
// by the R1-Zero CPU demo, see model/tiny.yaml):
//   model:
//     arch: deepseek_v3            # deepseek_v3 | qwen2_moe
//     vocab_size: 96
//     hidden_size: 128 ...         # same key names as config.json
//   plus zerorl-only keys: balance_bias_gamma (aux-loss-free bias speed,
//   0 disables updates), seq_aux_loss_alpha (sequence-wise balance loss,
//   0 disables), init_std, seed (weight init stream).  The other families
//   are read from a Hugging Face folder (`zerorl import`, policy.init).
//
// Contract: from / from_hf_json_text validate everything (positive sizes,
// divisibility, top_k <= experts, ...) and throw zerorl::Error naming the key
// and its position (recipe) or the file (config.json).  No torch headers here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace zerorl {
class ConfigNode;
}

namespace zerorl::model {

enum class Arch { kDeepseekV3, kDeepseekV2, kQwen2Moe, kQwen3Moe, kOlmoe, kQwen2, kQwen3, kLlama };
const char* arch_name(Arch a);  // the HF model_type ("deepseek_v3", "qwen3_moe", ...)

// Rotary position embedding.
struct RopeConfig {
  enum class Layout {
    kHalf /* rotate_half, Llama/Qwen */,
    kInterleaved /* (x0,x1),(x2,x3).. DeepSeek rope_interleave */
  };
  enum class Scaling { kDefault, kLinear, kYarn, kLlama3 };
  Layout layout = Layout::kInterleaved;
  Scaling scaling = Scaling::kDefault;
  double theta = 10000.0;
  double factor = 1.0;                                   // linear / yarn / llama3
  int64_t original_max_position = 4096;                  // yarn / llama3
  double low_freq_factor = 1.0, high_freq_factor = 4.0;  // llama3
  double beta_fast = 32.0, beta_slow = 1.0;              // yarn
  double mscale = 0.0, mscale_all_dim = 0.0;             // yarn (DeepSeek); 0 = absent
  double attention_factor = -1.0;  // yarn: < 0 means derive from mscale as HF does
  bool truncate = true;            // yarn correction range rounding

  // Multiplier on cos/sin (HF "attention_scaling"): 1 except for yarn.
  double cos_sin_scale() const;
  // Multiplier on the softmax scale 1/sqrt(d): yarn with mscale_all_dim gives
  // mscale(factor, mscale_all_dim)^2 (DeepSeek-V3), else 1.
  double softmax_scale_multiplier() const;
};

// Attention: GQA/MHA (kind kGqa) or Multi-head Latent Attention (kind kMla).
struct AttentionConfig {
  enum class Kind { kGqa, kMla };
  Kind kind = Kind::kMla;
  int64_t num_heads = 4;
  // GQA
  int64_t num_kv_heads = 4;
  int64_t head_dim = 32;
  bool qkv_bias = false;  // q/k/v projection biases (Qwen2: true)
  bool o_bias = false;    // o_proj bias (attention_bias of Qwen3 / OLMoE / Llama)
  // RMSNorm of q and k before RoPE: over each head's head_dim (Qwen3, weights
  // [head_dim]) or over the whole projection (OLMoE, weights [H*head_dim] and
  // [Hkv*head_dim]).
  enum class QkNorm { kNone, kPerHead, kFullWidth };
  QkNorm qk_norm = QkNorm::kNone;
  // MLA
  int64_t q_lora_rank = 0;  // 0: plain q_proj (V2-Lite style); > 0: q_a_proj -> norm -> q_b_proj
  int64_t kv_lora_rank = 64;
  int64_t qk_nope_head_dim = 32;
  int64_t qk_rope_head_dim = 16;
  int64_t v_head_dim = 32;
  bool attention_bias =
      false;  // MLA: bias on q_a_proj, kv_a_proj_with_mqa and o_proj (HF attention_bias)

  int64_t qk_head_dim() const {
    return kind == Kind::kMla ? qk_nope_head_dim + qk_rope_head_dim : head_dim;
  }
  int64_t rope_dim() const { return kind == Kind::kMla ? qk_rope_head_dim : head_dim; }
  int64_t out_head_dim() const { return kind == Kind::kMla ? v_head_dim : head_dim; }
};

// DeepSeekMoE / Qwen2Moe sparse block and the dense MLP.
struct MoeConfig {
  int64_t num_experts = 8;  // routed experts (n_routed_experts / num_experts); 0: dense model
  int64_t top_k = 2;        // num_experts_per_tok
  int64_t expert_intermediate = 128;  // moe_intermediate_size
  int64_t shared_intermediate =
      128;  // shared expert(s) width; 0: none.  DeepSeek: n_shared_experts * moe_intermediate_size
  bool shared_expert_gate = false;  // Qwen2Moe: sigmoid(Linear(D,1)) on the shared expert output
  bool sigmoid_scoring = true;      // false: softmax
  bool norm_topk_prob = true;
  double routed_scaling_factor = 1.0;
  int64_t n_group = 1, topk_group = 1;  // group-limited routing
  bool group_by_max = false;  // a group's score: its best expert (DeepSeek-V2) instead of top-2 sum
  bool score_bias = true;     // e_score_correction_bias present (DeepSeek-V3 noaux_tc)
  double balance_bias_gamma = 0.0;  // aux-loss-free bias update speed (0: frozen)
  double seq_aux_loss_alpha = 0.0;  // sequence-wise balance loss weight (0: off)
  // Which layers are MoE (others use the dense MLP of width dense_intermediate):
  int64_t first_k_dense_replace = 1;     // DeepSeek: layers < k are dense
  int64_t decoder_sparse_step = 1;       // Qwen2Moe: layer i is MoE iff (i+1) % step == 0
  std::vector<int64_t> mlp_only_layers;  // Qwen2Moe: forced dense
  int64_t dense_intermediate = 512;      // intermediate_size
  bool dense_bias = false;               // biases on the dense MLP (Llama mlp_bias)
};

struct ModelConfig {
  Arch arch = Arch::kDeepseekV3;
  int64_t vocab_size = 96;
  int64_t hidden_size = 128;
  int64_t num_layers = 4;
  int64_t max_position = 1024;  // max_position_embeddings (KV cache lengths are checked against it)
  double rms_norm_eps = 1e-6;
  bool tie_embeddings = false;
  int64_t bos_token_id = -1, eos_token_id = -1, pad_token_id = -1;  // -1: absent
  // Every id that ends a generation (config.json eos_token_id, replaced by
  // generation_config.json's when the folder has one; first = eos_token_id).
  std::vector<int64_t> eos_token_ids;
  AttentionConfig attn;
  RopeConfig rope;
  MoeConfig moe;
  double init_std = 0.02;  // initializer_range
  uint64_t seed = 0;       // weight-init stream (RngPurpose::kInit)

  // True when layer `i` uses the routed-expert block.
  bool layer_is_moe(int64_t i) const;
  int64_t num_moe_layers() const;
  // Throws zerorl::Error (prefixed with `where`) on an inconsistent config.
  void validate(const std::string& where = "model config") const;

  // From a recipe section (see the header comment).  Every key is read, so
  // Recipe::check_all_read() catches misspellings.
  static ModelConfig from(const ConfigNode& node);
  // From a Hugging Face config.json (path for messages).
  static ModelConfig from_hf_json_file(const std::string& path);
  static ModelConfig from_hf_json_text(const std::string& json_text, const std::string& name);
  // Hugging Face config.json text for this config (model_type, architectures,
  // every field transformers 5.x reads).  from_hf_json_text(to_hf_json())
  // gives back an equal config (zerorl-only knobs aside).
  std::string to_hf_json() const;
  // Human-readable one-line summary ("deepseek_v3 L4 D192 MLA E8 top2 ...").
  std::string summary() const;
};

bool operator==(const ModelConfig& a, const ModelConfig& b);

}  // namespace zerorl::model
