// ModelConfig: the shape and behaviour of the policy model, one small struct
// per component, read from a recipe section or from a Hugging Face config.json.
//
// Supported families (anything else is rejected with a message naming the
// file and the `model_type`):
//   * deepseek_v3 (DeepSeek-V3/R1, Moonlight-16B-A3B, and DeepSeek-V2-Lite-style
//     settings expressed in a deepseek_v3 config: no q low-rank, softmax
//     scoring via "scoring_func", greedy or group-limited routing).  MLA
//     attention, DeepSeekMoE (shared + routed experts), sigmoid/softmax
//     scoring, group-limited top-k, first_k_dense_replace dense layers,
//     interleaved or half-split RoPE, yarn/linear/default RoPE scaling.
//   * qwen2_moe (Qwen1.5-MoE / Qwen2-57B-A14B style): GQA attention with q/k/v
//     bias, half-split RoPE, softmax top-k routing, one shared expert behind a
//     sigmoid gate, decoder_sparse_step / mlp_only_layers.
//
// Recipe section (all keys optional; the defaults ARE the `tiny` model used
// by the R1-Zero CPU demo, see model/tiny.yaml):
//   model:
//     arch: deepseek_v3            # deepseek_v3 | qwen2_moe
//     vocab_size: 96
//     hidden_size: 128 ...         # same key names as config.json
//   plus zerorl-only keys: balance_bias_gamma (aux-loss-free bias speed,
//   0 disables updates), seq_aux_loss_alpha (sequence-wise balance loss,
//   0 disables), init_std, seed (weight init stream).
//
// Contract: from_recipe / from_hf_json validate everything (positive sizes,
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

enum class Arch { kDeepseekV3, kQwen2Moe };
const char* arch_name(Arch a);  // "deepseek_v3" / "qwen2_moe" (HF model_type)

// Rotary position embedding.
struct RopeConfig {
  enum class Layout {
    kHalf /* rotate_half, Llama/Qwen */,
    kInterleaved /* (x0,x1),(x2,x3).. DeepSeek rope_interleave */
  };
  enum class Scaling { kDefault, kLinear, kYarn };
  Layout layout = Layout::kInterleaved;
  Scaling scaling = Scaling::kDefault;
  double theta = 10000.0;
  double factor = 1.0;                        // linear / yarn
  int64_t original_max_position = 4096;       // yarn
  double beta_fast = 32.0, beta_slow = 1.0;   // yarn
  double mscale = 0.0, mscale_all_dim = 0.0;  // yarn (DeepSeek); 0 = absent
  double attention_factor = -1.0;             // yarn: < 0 means derive from mscale as HF does
  bool truncate = true;                       // yarn correction range rounding

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
  bool qkv_bias = false;  // q/k/v projection biases (Qwen2Moe: true)
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
  bool score_bias = true;               // e_score_correction_bias present (DeepSeek-V3 noaux_tc)
  double balance_bias_gamma = 0.0;      // aux-loss-free bias update speed (0: frozen)
  double seq_aux_loss_alpha = 0.0;      // sequence-wise balance loss weight (0: off)
  // Which layers are MoE (others use the dense MLP of width dense_intermediate):
  int64_t first_k_dense_replace = 1;     // DeepSeek: layers < k are dense
  int64_t decoder_sparse_step = 1;       // Qwen2Moe: layer i is MoE iff (i+1) % step == 0
  std::vector<int64_t> mlp_only_layers;  // Qwen2Moe: forced dense
  int64_t dense_intermediate = 512;      // intermediate_size
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
  static ModelConfig from_recipe(const ConfigNode& node);
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
