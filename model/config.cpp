// ModelConfig from recipes and Hugging Face config.json, and back.
#include "model/config.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <type_traits>

#include "core/config.h"
#include "core/error.h"

namespace zerorl::model {

using nlohmann::json;

static double yarn_get_mscale(double scale, double mscale) {
  if (scale <= 1) return 1.0;
  return 0.1 * mscale * std::log(scale) + 1.0;
}

double RopeConfig::cos_sin_scale() const {
  if (scaling != Scaling::kYarn) return 1.0;
  if (attention_factor >= 0) return attention_factor;
  if (mscale != 0 && mscale_all_dim != 0)
    return yarn_get_mscale(factor, mscale) / yarn_get_mscale(factor, mscale_all_dim);
  return yarn_get_mscale(factor, 1.0);
}

double RopeConfig::softmax_scale_multiplier() const {
  // HF yarn_apply_mscale: any non-default rope type with mscale_all_dim.
  if (scaling == Scaling::kDefault || mscale_all_dim == 0) return 1.0;
  double m = yarn_get_mscale(factor, mscale_all_dim);
  return m * m;
}

bool ModelConfig::layer_is_moe(int64_t i) const {
  // One rule for every family: DeepSeek's first_k_dense_replace, Qwen's
  // mlp_only_layers and decoder_sparse_step (each neutral where absent).
  if (moe.num_experts <= 0 || i < moe.first_k_dense_replace) return false;
  for (int64_t j : moe.mlp_only_layers)
    if (j == i) return false;
  return (i + 1) % moe.decoder_sparse_step == 0;
}

int64_t ModelConfig::num_moe_layers() const {
  int64_t n = 0;
  for (int64_t i = 0; i < num_layers; ++i) n += layer_is_moe(i);
  return n;
}

void ModelConfig::validate(const std::string& where) const {
  auto pos = [&](int64_t v, const char* name) {
    ZR_CHECK(v > 0, where, ": ", name, " must be > 0, got ", v);
  };
  pos(vocab_size, "vocab_size");
  pos(hidden_size, "hidden_size");
  pos(num_layers, "num_hidden_layers");
  pos(max_position, "max_position_embeddings");
  pos(attn.num_heads, "num_attention_heads");
  ZR_CHECK(rms_norm_eps > 0, where, ": rms_norm_eps must be > 0");
  if (attn.kind == AttentionConfig::Kind::kGqa) {
    pos(attn.num_kv_heads, "num_key_value_heads");
    pos(attn.head_dim, "head_dim");
    ZR_CHECK(attn.num_heads % attn.num_kv_heads == 0, where, ": num_attention_heads (",
             attn.num_heads, ") must be a multiple of num_key_value_heads (", attn.num_kv_heads,
             ")");
    ZR_CHECK(attn.head_dim % 2 == 0, where, ": head_dim must be even for RoPE, got ",
             attn.head_dim);
  } else {
    ZR_CHECK(attn.q_lora_rank >= 0, where, ": q_lora_rank must be >= 0 (0 = none)");
    pos(attn.kv_lora_rank, "kv_lora_rank");
    pos(attn.qk_rope_head_dim, "qk_rope_head_dim");
    pos(attn.v_head_dim, "v_head_dim");
    ZR_CHECK(attn.qk_nope_head_dim >= 0, where, ": qk_nope_head_dim must be >= 0");
    ZR_CHECK(attn.qk_rope_head_dim % 2 == 0, where, ": qk_rope_head_dim must be even, got ",
             attn.qk_rope_head_dim);
  }
  ZR_CHECK(rope.theta > 0, where, ": rope_theta must be > 0");
  if (rope.scaling != RopeConfig::Scaling::kDefault)
    ZR_CHECK(rope.factor > 0, where, ": rope scaling factor must be > 0, got ", rope.factor);
  if (rope.scaling == RopeConfig::Scaling::kYarn)
    pos(rope.original_max_position, "original_max_position_embeddings");
  pos(moe.dense_intermediate, "intermediate_size");
  ZR_CHECK(moe.num_experts >= 0, where, ": n_routed_experts must be >= 0");
  if (moe.num_experts > 0) {
    pos(moe.expert_intermediate, "moe_intermediate_size");
    ZR_CHECK(moe.top_k >= 1 && moe.top_k <= moe.num_experts, where,
             ": num_experts_per_tok must be in [1, ", moe.num_experts, "], got ", moe.top_k);
    ZR_CHECK(moe.shared_intermediate >= 0, where, ": shared expert width must be >= 0");
    pos(moe.n_group, "n_group");
    ZR_CHECK(moe.num_experts % moe.n_group == 0, where, ": n_routed_experts (", moe.num_experts,
             ") must be divisible by n_group (", moe.n_group, ")");
    ZR_CHECK(moe.topk_group >= 1 && moe.topk_group <= moe.n_group, where,
             ": topk_group must be in [1, n_group=", moe.n_group, "], got ", moe.topk_group);
    if (moe.n_group > 1) {
      ZR_CHECK(moe.num_experts / moe.n_group >= 2, where,
               ": group-limited routing needs >= 2 experts per group");
      ZR_CHECK(moe.top_k <= moe.topk_group * (moe.num_experts / moe.n_group), where,
               ": num_experts_per_tok (", moe.top_k, ") exceeds the experts in topk_group groups");
    }
    ZR_CHECK(moe.routed_scaling_factor > 0, where, ": routed_scaling_factor must be > 0");
    ZR_CHECK(moe.balance_bias_gamma >= 0, where, ": balance_bias_gamma must be >= 0");
    ZR_CHECK(moe.seq_aux_loss_alpha >= 0, where, ": seq_aux_loss_alpha must be >= 0");
    ZR_CHECK(moe.decoder_sparse_step >= 1, where, ": decoder_sparse_step must be >= 1");
    ZR_CHECK(moe.first_k_dense_replace >= 0, where, ": first_k_dense_replace must be >= 0");
  }
  const bool mla_family = arch == Arch::kDeepseekV3 || arch == Arch::kDeepseekV2;
  ZR_CHECK((attn.kind == AttentionConfig::Kind::kMla) == mla_family, where, ": ", arch_name(arch),
           " uses ", mla_family ? "MLA" : "GQA", " attention");
  if (attn.qk_norm == AttentionConfig::QkNorm::kFullWidth)
    ZR_CHECK(attn.num_heads * attn.head_dim == hidden_size, where,
             ": q/k norm over the full width needs num_attention_heads * head_dim == hidden_size");
  if (rope.scaling == RopeConfig::Scaling::kLlama3)
    ZR_CHECK(rope.high_freq_factor > rope.low_freq_factor && rope.low_freq_factor > 0, where,
             ": llama3 rope needs 0 < low_freq_factor < high_freq_factor");
  for (int64_t id : eos_token_ids)
    ZR_CHECK(id >= 0 && id < vocab_size, where, ": eos_token_id ", id, " is outside [0, ",
             vocab_size, ")");
  ZR_CHECK(init_std > 0, where, ": initializer_range must be > 0");
  ZR_CHECK(pad_token_id < vocab_size && bos_token_id < vocab_size && eos_token_id < vocab_size,
           where, ": special token ids must be < vocab_size (", vocab_size, ")");
}

// ---- the keys every reader and the writer share ----------------------------------

namespace {

// Whether a Hugging Face config.json must give a key (a recipe always falls
// back to the tiny model's default, model/config.h).
enum class Need { kRequired, kOptional };

// The keys that a recipe's model section, a Hugging Face config.json and
// to_hf_json() name alike, each with the field it fills: the one list that
// from (the recipe reader), from_hf_json_text and to_hf_json walk.  C is
// ModelConfig or const ModelConfig; visit(key, field, Need).  The order is
// from's reading order, which is the order recipe.resolved.yaml lists the
// defaults it filled in: keep it.
template <typename C, typename Visit>
void for_each_shape_key(C& c, Visit&& visit) {
  visit("vocab_size", c.vocab_size, Need::kRequired);
  visit("hidden_size", c.hidden_size, Need::kRequired);
  visit("num_hidden_layers", c.num_layers, Need::kRequired);
  visit("max_position_embeddings", c.max_position, Need::kOptional);
  visit("rms_norm_eps", c.rms_norm_eps, Need::kOptional);
  visit("tie_word_embeddings", c.tie_embeddings, Need::kOptional);
}

// The same for multi-head latent attention (MLA families only).
template <typename C, typename Visit>
void for_each_mla_key(C& c, Visit&& visit) {
  visit("kv_lora_rank", c.attn.kv_lora_rank, Need::kRequired);
  visit("qk_nope_head_dim", c.attn.qk_nope_head_dim, Need::kRequired);
  visit("qk_rope_head_dim", c.attn.qk_rope_head_dim, Need::kRequired);
  visit("v_head_dim", c.attn.v_head_dim, Need::kRequired);
  visit("attention_bias", c.attn.attention_bias, Need::kOptional);
}

}  // namespace

// ---- recipe ------------------------------------------------------------------

ModelConfig ModelConfig::from(const ConfigNode& n) {
  ModelConfig c;  // defaults = the tiny model
  std::string arch = n.choice("arch", {"deepseek_v3", "qwen2_moe"}, "deepseek_v3");
  c.arch = arch == "qwen2_moe" ? Arch::kQwen2Moe : Arch::kDeepseekV3;
  bool qwen = c.arch == Arch::kQwen2Moe;
  // A key the recipe leaves out keeps the tiny model's value.
  const auto read = [&n](const char* key, auto& field, Need) {
    field = n.get<std::decay_t<decltype(field)>>(key, field);
  };
  for_each_shape_key(c, read);
  c.bos_token_id = n.get<long long>("bos_token_id", c.bos_token_id);
  c.eos_token_id = n.get<long long>("eos_token_id", c.eos_token_id);
  if (c.eos_token_id >= 0) c.eos_token_ids = {c.eos_token_id};
  c.pad_token_id = n.get<long long>("pad_token_id", c.pad_token_id);
  c.init_std = n.get<double>("initializer_range", c.init_std);
  c.seed = n.get<unsigned long long>("seed", c.seed);

  auto& a = c.attn;
  std::string kind = n.choice("attention", {"mla", "gqa"}, qwen ? "gqa" : "mla");
  a.kind = kind == "mla" ? AttentionConfig::Kind::kMla : AttentionConfig::Kind::kGqa;
  a.num_heads = n.get<long long>("num_attention_heads", a.num_heads);
  if (a.kind == AttentionConfig::Kind::kGqa) {
    a.num_kv_heads = n.get<long long>("num_key_value_heads", a.num_heads);
    a.head_dim = n.get<long long>("head_dim", c.hidden_size / a.num_heads);
    a.qkv_bias = n.get<bool>("qkv_bias", qwen);
  } else {
    a.num_kv_heads = a.num_heads;
    a.q_lora_rank = n.get<long long>("q_lora_rank", a.q_lora_rank);
    for_each_mla_key(c, read);
  }

  auto& r = c.rope;
  r.theta = n.get<double>("rope_theta", r.theta);
  r.layout = n.get<bool>("rope_interleave", !qwen) ? RopeConfig::Layout::kInterleaved
                                                   : RopeConfig::Layout::kHalf;
  std::string sc = n.choice("rope_scaling", {"default", "linear", "yarn"}, "default");
  r.scaling = sc == "yarn"     ? RopeConfig::Scaling::kYarn
              : sc == "linear" ? RopeConfig::Scaling::kLinear
                               : RopeConfig::Scaling::kDefault;
  if (r.scaling != RopeConfig::Scaling::kDefault) r.factor = n.get<double>("rope_factor");
  if (r.scaling == RopeConfig::Scaling::kYarn) {
    r.original_max_position = n.get<long long>("rope_original_max_position_embeddings");
    r.beta_fast = n.get<double>("rope_beta_fast", r.beta_fast);
    r.beta_slow = n.get<double>("rope_beta_slow", r.beta_slow);
    r.mscale = n.get<double>("rope_mscale", r.mscale);
    r.mscale_all_dim = n.get<double>("rope_mscale_all_dim", r.mscale_all_dim);
  }

  auto& m = c.moe;
  m.dense_intermediate = n.get<long long>("intermediate_size", m.dense_intermediate);
  m.num_experts = n.get<long long>("n_routed_experts", m.num_experts);
  m.top_k = n.get<long long>("num_experts_per_tok", m.top_k);
  m.expert_intermediate = n.get<long long>("moe_intermediate_size", m.expert_intermediate);
  if (qwen) {
    m.shared_intermediate =
        n.get<long long>("shared_expert_intermediate_size", m.shared_intermediate);
    m.shared_expert_gate = true;
    m.sigmoid_scoring = false;
    m.score_bias = false;
    m.norm_topk_prob = n.get<bool>("norm_topk_prob", false);
    m.decoder_sparse_step = n.get<long long>("decoder_sparse_step", 1);
    std::vector<long> only = n.get<std::vector<long>>("mlp_only_layers", {});
    m.mlp_only_layers.assign(only.begin(), only.end());
    m.first_k_dense_replace = 0;
  } else {
    int64_t n_shared = n.get<long long>("n_shared_experts", 1);
    ZR_CHECK(n_shared >= 0, n.where("n_shared_experts"), ": n_shared_experts must be >= 0");
    m.shared_intermediate = n_shared * m.expert_intermediate;
    m.shared_expert_gate = false;
    m.sigmoid_scoring = n.choice("scoring_func", {"sigmoid", "softmax"}, "sigmoid") == "sigmoid";
    m.score_bias = n.get<bool>("score_bias", true);
    m.norm_topk_prob = n.get<bool>("norm_topk_prob", m.norm_topk_prob);
    m.routed_scaling_factor = n.get<double>("routed_scaling_factor", m.routed_scaling_factor);
    m.n_group = n.get<long long>("n_group", m.n_group);
    m.topk_group = n.get<long long>("topk_group", m.topk_group);
    m.first_k_dense_replace = n.get<long long>("first_k_dense_replace", 1);
  }
  m.balance_bias_gamma = n.get<double>("balance_bias_gamma", m.score_bias ? 0.001 : 0.0);
  m.seq_aux_loss_alpha = n.get<double>("seq_aux_loss_alpha", m.seq_aux_loss_alpha);
  if (m.balance_bias_gamma > 0)
    ZR_CHECK(m.score_bias, n.where("balance_bias_gamma"),
             ": balance_bias_gamma > 0 needs score_bias: true");
  c.validate(n.where());
  return c;
}

// ---- Hugging Face config.json --------------------------------------------------

namespace {

struct JsonReader {
  const json& j;
  const std::string& name;
  template <typename T>
  T get(const char* key, const T& dflt) const {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return dflt;
    try {
      return it->get<T>();
    } catch (const std::exception& e) {
      ZR_THROW(name, ": key '", key, "' has the wrong type (", it->dump(), ")");
    }
  }
  template <typename T>
  T req(const char* key) const {
    auto it = j.find(key);
    ZR_CHECK(it != j.end() && !it->is_null(), name, ": required key '", key, "' is missing");
    try {
      return it->get<T>();
    } catch (const std::exception& e) {
      ZR_THROW(name, ": key '", key, "' has the wrong type (", it->dump(), ")");
    }
  }
  bool has(const char* key) const { return j.contains(key) && !j.at(key).is_null(); }
};

int64_t first_token_id(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return -1;
  if (it->is_array()) return it->empty() ? -1 : (*it)[0].get<int64_t>();
  return it->get<int64_t>();
}

// An id or a list of ids (eos_token_id may be either).
std::vector<int64_t> token_ids(const json& j, const char* key, const std::string& name) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return {};
  try {
    if (it->is_array()) return it->get<std::vector<int64_t>>();
    return {it->get<int64_t>()};
  } catch (const std::exception&) {
    ZR_THROW(name, ": key '", key, "' must be an id or a list of ids, got ", it->dump());
  }
}

// rope_parameters (transformers 5.x) or rope_scaling + rope_theta (hub configs).
void read_rope(const JsonReader& r, RopeConfig& rope, int64_t max_position) {
  json params = json::object();
  if (r.has("rope_parameters"))
    params = r.j.at("rope_parameters");
  else if (r.has("rope_scaling"))
    params = r.j.at("rope_scaling");
  ZR_CHECK(params.is_object(), r.name, ": rope_parameters/rope_scaling must be an object");
  JsonReader p{params, r.name};
  rope.theta = p.get<double>("rope_theta", r.get<double>("rope_theta", 10000.0));
  std::string type = p.get<std::string>("rope_type", p.get<std::string>("type", "default"));
  double partial =
      p.get<double>("partial_rotary_factor", r.get<double>("partial_rotary_factor", 1.0));
  ZR_CHECK(partial == 1.0, r.name, ": partial_rotary_factor ", partial,
           " is not supported (RoPE over the whole head)");
  if (type == "default") {
    rope.scaling = RopeConfig::Scaling::kDefault;
  } else if (type == "linear") {
    rope.scaling = RopeConfig::Scaling::kLinear;
    rope.factor = p.req<double>("factor");
  } else if (type == "yarn") {
    rope.scaling = RopeConfig::Scaling::kYarn;
    rope.original_max_position =
        p.get<int64_t>("original_max_position_embeddings",
                       r.get<int64_t>("original_max_position_embeddings", max_position));
    rope.factor = p.get<double>("factor", -1.0);
    if (rope.factor < 0) rope.factor = double(max_position) / double(rope.original_max_position);
    rope.beta_fast = p.get<double>("beta_fast", 32.0);
    rope.beta_slow = p.get<double>("beta_slow", 1.0);
    if (rope.beta_fast == 0) rope.beta_fast = 32.0;  // HF: `or 32`
    if (rope.beta_slow == 0) rope.beta_slow = 1.0;
    rope.mscale = p.get<double>("mscale", 0.0);
    rope.mscale_all_dim = p.get<double>("mscale_all_dim", 0.0);
    rope.attention_factor = p.get<double>("attention_factor", -1.0);
    rope.truncate = p.get<bool>("truncate", true);
  } else if (type == "llama3") {
    rope.scaling = RopeConfig::Scaling::kLlama3;
    rope.factor = p.req<double>("factor");
    rope.low_freq_factor = p.req<double>("low_freq_factor");
    rope.high_freq_factor = p.req<double>("high_freq_factor");
    rope.original_max_position = p.req<int64_t>("original_max_position_embeddings");
  } else {
    ZR_THROW(r.name, ": rope type '", type,
             "' is not supported (default, linear, yarn, llama3 are)");
  }
}

}  // namespace

namespace {

// What differs between the families (see the table in config.h); everything
// not here is read the same way for all.
struct Family {
  Arch arch;
  const char* model_type;
  const char* hf_class;
  bool mla;
  AttentionConfig::QkNorm qk_norm;
  enum class Bias { kQkvKey, kQkvAlways, kAttentionBias } bias;
  enum class Moe { kNone, kDeepseek, kQwen, kOlmoe } moe;
  bool gated_shared_expert;                        // qwen2_moe
  bool sliding_window_key;                         // config has use_sliding_window (must be false)
  int64_t default_max_position, default_head_dim;  // head_dim 0: hidden_size / heads
};

using QkNorm = AttentionConfig::QkNorm;
using Bias = Family::Bias;
using FMoe = Family::Moe;
const Family kFamilies[] = {
    {Arch::kDeepseekV3, "deepseek_v3", "DeepseekV3ForCausalLM", true, QkNorm::kNone,
     Bias::kAttentionBias, FMoe::kDeepseek, false, false, 4096, 0},
    {Arch::kDeepseekV2, "deepseek_v2", "DeepseekV2ForCausalLM", true, QkNorm::kNone,
     Bias::kAttentionBias, FMoe::kDeepseek, false, false, 2048, 0},
    {Arch::kQwen2Moe, "qwen2_moe", "Qwen2MoeForCausalLM", false, QkNorm::kNone, Bias::kQkvKey,
     FMoe::kQwen, true, true, 32768, 0},
    {Arch::kQwen3Moe, "qwen3_moe", "Qwen3MoeForCausalLM", false, QkNorm::kPerHead,
     Bias::kAttentionBias, FMoe::kQwen, false, true, 32768, 0},
    {Arch::kOlmoe, "olmoe", "OlmoeForCausalLM", false, QkNorm::kFullWidth, Bias::kAttentionBias,
     FMoe::kOlmoe, false, false, 4096, 0},
    {Arch::kQwen2, "qwen2", "Qwen2ForCausalLM", false, QkNorm::kNone, Bias::kQkvAlways, FMoe::kNone,
     false, true, 32768, 0},
    {Arch::kQwen3, "qwen3", "Qwen3ForCausalLM", false, QkNorm::kPerHead, Bias::kAttentionBias,
     FMoe::kNone, false, true, 32768, 128},
    {Arch::kLlama, "llama", "LlamaForCausalLM", false, QkNorm::kNone, Bias::kAttentionBias,
     FMoe::kNone, false, false, 2048, 0},
};

const Family& family(Arch a) {
  for (const Family& f : kFamilies)
    if (f.arch == a) return f;
  ZR_THROW("unknown architecture ", static_cast<int>(a));
}

std::string family_list() {
  std::string s;
  for (const Family& f : kFamilies) s += (s.empty() ? "" : ", ") + std::string(f.model_type);
  return s;
}

}  // namespace

const char* arch_name(Arch a) { return family(a).model_type; }

// Long (~160 lines) on purpose: config.json read top to bottom in one place,
// family differences as branches on the Family table, so a reviewer checks
// every key against transformers' config classes in one pass.
ModelConfig ModelConfig::from_hf_json_text(const std::string& text, const std::string& name) {
  json j;
  try {
    j = json::parse(text);
  } catch (const std::exception& e) {
    ZR_THROW(name, ": not valid JSON: ", e.what());
  }
  ZR_CHECK(j.is_object(), name, ": expected a JSON object");
  JsonReader r{j, name};
  std::string type = r.get<std::string>("model_type", "");
  const Family* fam = nullptr;
  for (const Family& f : kFamilies)
    if (type == f.model_type) fam = &f;
  ZR_CHECK(fam != nullptr, name, ": model_type '", type, "' is not supported; zerorl runs ",
           family_list(), " checkpoints");
  ModelConfig c;
  c.arch = fam->arch;
  std::string act = r.get<std::string>("hidden_act", "silu");
  ZR_CHECK(act == "silu", name, ": hidden_act '", act, "' is not supported (silu only)");
  if (fam->sliding_window_key)
    ZR_CHECK(!r.get<bool>("use_sliding_window", false), name,
             ": use_sliding_window=true is not supported (zerorl attends to the full context)");

  // config.json's defaults of the optional shared keys, then the keys.
  c.max_position = fam->default_max_position;
  c.rms_norm_eps = c.arch == Arch::kOlmoe ? 1e-5 : 1e-6;
  c.tie_embeddings = false;
  c.attn.attention_bias = false;
  const auto read = [&r](const char* key, auto& field, Need need) {
    using T = std::decay_t<decltype(field)>;
    field = need == Need::kRequired ? r.req<T>(key) : r.get<T>(key, field);
  };
  for_each_shape_key(c, read);
  c.bos_token_id = first_token_id(j, "bos_token_id");
  c.eos_token_ids = token_ids(j, "eos_token_id", name);
  c.eos_token_id = c.eos_token_ids.empty() ? -1 : c.eos_token_ids.front();
  c.pad_token_id = first_token_id(j, "pad_token_id");
  c.init_std = r.get<double>("initializer_range", 0.02);

  auto& a = c.attn;
  a.num_heads = r.req<int64_t>("num_attention_heads");
  a.num_kv_heads = r.get<int64_t>("num_key_value_heads", a.num_heads);
  auto& m = c.moe;
  m.dense_intermediate = r.req<int64_t>("intermediate_size");
  if (c.arch == Arch::kLlama) m.dense_bias = r.get<bool>("mlp_bias", false);
  if (fam->mla) {
    a.kind = AttentionConfig::Kind::kMla;
    ZR_CHECK(a.num_kv_heads == a.num_heads, name, ": num_key_value_heads (", a.num_kv_heads,
             ") must equal num_attention_heads (", a.num_heads, ") for MLA");
    a.q_lora_rank = r.get<int64_t>("q_lora_rank", 0);
    for_each_mla_key(c, read);
    // DeepSeek-V2 rotates (x0,x1),(x2,x3).. as complex numbers; V3 as rope_interleave says.
    bool interleave = c.arch == Arch::kDeepseekV2 || r.get<bool>("rope_interleave", true);
    c.rope.layout = interleave ? RopeConfig::Layout::kInterleaved : RopeConfig::Layout::kHalf;
  } else {
    a.kind = AttentionConfig::Kind::kGqa;
    a.head_dim =
        r.get<int64_t>("head_dim", fam->default_head_dim > 0 ? fam->default_head_dim
                                                             : c.hidden_size / a.num_heads);
    a.qk_norm = fam->qk_norm;
    switch (fam->bias) {
      case Bias::kQkvKey:
        a.qkv_bias = r.get<bool>("qkv_bias", true);
        break;
      case Bias::kQkvAlways:
        a.qkv_bias = true;
        break;
      case Bias::kAttentionBias:
        a.qkv_bias = a.o_bias = r.get<bool>("attention_bias", false);
        break;
    }
    c.rope.layout = RopeConfig::Layout::kHalf;
    if (c.arch == Arch::kOlmoe)
      ZR_CHECK(!r.has("clip_qkv"), name, ": clip_qkv is not supported (OLMoE releases use null)");
  }

  m.shared_intermediate = 0;
  m.shared_expert_gate = false;
  m.sigmoid_scoring = false;
  m.score_bias = false;
  m.first_k_dense_replace = 0;
  switch (fam->moe) {
    case FMoe::kNone:
      m.num_experts = 0;
      break;
    case FMoe::kQwen:
      // transformers 5.x saves Qwen3-MoE's count as num_local_experts.
      m.num_experts = r.has("num_experts") ? r.req<int64_t>("num_experts")
                                           : r.req<int64_t>("num_local_experts");
      m.top_k = r.req<int64_t>("num_experts_per_tok");
      m.expert_intermediate = r.req<int64_t>("moe_intermediate_size");
      if (fam->gated_shared_expert) {
        m.shared_intermediate = r.get<int64_t>("shared_expert_intermediate_size", 5632);
        m.shared_expert_gate = true;
      }
      m.norm_topk_prob = r.get<bool>("norm_topk_prob", false);
      m.decoder_sparse_step = r.get<int64_t>("decoder_sparse_step", 1);
      m.mlp_only_layers = r.get<std::vector<int64_t>>("mlp_only_layers", {});
      break;
    case FMoe::kOlmoe:
      // Every layer is MoE; the experts have the width of intermediate_size.
      m.num_experts = r.get<int64_t>("num_experts", 64);
      m.top_k = r.get<int64_t>("num_experts_per_tok", 8);
      m.expert_intermediate = m.dense_intermediate;
      m.norm_topk_prob = r.get<bool>("norm_topk_prob", false);
      break;
    case FMoe::kDeepseek: {
      m.num_experts = r.req<int64_t>("n_routed_experts");
      m.top_k = r.req<int64_t>("num_experts_per_tok");
      m.expert_intermediate = r.req<int64_t>("moe_intermediate_size");
      m.shared_intermediate = r.get<int64_t>("n_shared_experts", 1) * m.expert_intermediate;
      m.routed_scaling_factor = r.get<double>("routed_scaling_factor", 1.0);
      m.first_k_dense_replace = r.get<int64_t>("first_k_dense_replace", 0);
      std::string scoring = r.get<std::string>("scoring_func", "sigmoid");
      std::string method = r.get<std::string>("topk_method", "noaux_tc");
      m.n_group = r.get<int64_t>("n_group", 1);
      m.topk_group = r.get<int64_t>("topk_group", 1);
      if (c.arch == Arch::kDeepseekV2) {
        // transformers' DeepseekV2TopkRouter: softmax, then greedy or
        // group-limited greedy (a group scores its best expert), weights x
        // routed_scaling_factor, never renormalised.
        ZR_CHECK(!r.has("scoring_func") || scoring == "softmax", name, ": scoring_func '", scoring,
                 "' is not supported for deepseek_v2 (softmax)");
        ZR_CHECK(!r.get<bool>("norm_topk_prob", false), name,
                 ": norm_topk_prob=true is not supported for deepseek_v2 (transformers ignores "
                 "it, DeepSeek's own code honours it; every released V2 has false)");
        ZR_CHECK(r.get<int64_t>("moe_layer_freq", 1) == 1, name,
                 ": moe_layer_freq != 1 is not supported (transformers ignores it)");
        m.norm_topk_prob = false;
        m.group_by_max = true;
        if (!r.has("topk_method")) method = "greedy";
        if (method == "greedy")
          m.n_group = 1, m.topk_group = 1;
        else
          ZR_CHECK(method == "group_limited_greedy", name, ": topk_method '", method,
                   "' is not supported for deepseek_v2 (greedy, group_limited_greedy)");
      } else {
        ZR_CHECK(scoring == "sigmoid" || scoring == "softmax", name, ": scoring_func '", scoring,
                 "' is not supported (sigmoid, softmax)");
        m.sigmoid_scoring = scoring == "sigmoid";
        if (method == "noaux_tc") {
          m.score_bias = true;
        } else if (method == "greedy") {
          m.n_group = 1, m.topk_group = 1;  // plain top-k over all experts
        } else {
          ZR_THROW(name, ": topk_method '", method, "' is not supported (noaux_tc, greedy)");
        }
        m.norm_topk_prob = r.get<bool>("norm_topk_prob", true);
      }
      break;
    }
  }
  read_rope(r, c.rope, c.max_position);
  // zerorl-only knobs round-trip through an extra object transformers ignores.
  if (j.contains("zerorl") && j["zerorl"].is_object()) {
    JsonReader z{j["zerorl"], name};
    m.balance_bias_gamma = z.get<double>("balance_bias_gamma", 0.0);
    m.seq_aux_loss_alpha = z.get<double>("seq_aux_loss_alpha", 0.0);
    c.seed = z.get<uint64_t>("seed", 0);
  }
  c.validate(name);
  return c;
}

ModelConfig ModelConfig::from_hf_json_file(const std::string& path) {
  std::ifstream f(path);
  ZR_CHECK(f.good(), path, ": cannot open (expected a Hugging Face config.json)");
  std::stringstream ss;
  ss << f.rdbuf();
  return from_hf_json_text(ss.str(), path);
}

// The mirror of from_hf_json_text (~110 lines), kept in the same order so
// the two can be read side by side.
std::string ModelConfig::to_hf_json() const {
  json j;
  const Family& fam = family(arch);
  j["model_type"] = fam.model_type;
  j["architectures"] = {fam.hf_class};
  const auto write = [&j](const char* key, const auto& field, Need) { j[key] = field; };
  for_each_shape_key(*this, write);
  j["hidden_act"] = "silu";
  j["initializer_range"] = init_std;
  auto tok = [&](const char* k, int64_t v) { j[k] = v >= 0 ? json(v) : json(nullptr); };
  tok("bos_token_id", bos_token_id);
  if (eos_token_ids.size() > 1)
    j["eos_token_id"] = eos_token_ids;
  else
    tok("eos_token_id", eos_token_id);
  tok("pad_token_id", pad_token_id);
  j["num_attention_heads"] = attn.num_heads;
  j["num_key_value_heads"] = attn.num_kv_heads;
  j["intermediate_size"] =
      fam.moe == Family::Moe::kOlmoe ? moe.expert_intermediate : moe.dense_intermediate;
  j["dtype"] = "float32";
  if (fam.sliding_window_key) j["use_sliding_window"] = false;
  if (arch == Arch::kLlama) j["mlp_bias"] = moe.dense_bias;
  if (!fam.mla) {
    j["head_dim"] = attn.head_dim;
    if (fam.bias == Family::Bias::kQkvKey) j["qkv_bias"] = attn.qkv_bias;
    if (fam.bias == Family::Bias::kAttentionBias) {
      ZR_CHECK(attn.qkv_bias == attn.o_bias, "to_hf_json: ", fam.model_type,
               " has one attention_bias for q/k/v and o_proj");
      j["attention_bias"] = attn.qkv_bias;
    }
  } else {
    j["q_lora_rank"] = attn.q_lora_rank > 0 ? json(attn.q_lora_rank) : json(nullptr);
    for_each_mla_key(*this, write);
    if (arch == Arch::kDeepseekV3)
      j["rope_interleave"] = rope.layout == RopeConfig::Layout::kInterleaved;
  }
  switch (fam.moe) {
    case Family::Moe::kNone:
      break;
    case Family::Moe::kQwen:
    case Family::Moe::kOlmoe:
      j["num_experts"] = moe.num_experts;
      j["num_experts_per_tok"] = moe.top_k;
      j["norm_topk_prob"] = moe.norm_topk_prob;
      if (fam.moe == Family::Moe::kOlmoe) break;
      j["moe_intermediate_size"] = moe.expert_intermediate;
      j["decoder_sparse_step"] = moe.decoder_sparse_step;
      j["mlp_only_layers"] = moe.mlp_only_layers;
      if (fam.gated_shared_expert) j["shared_expert_intermediate_size"] = moe.shared_intermediate;
      break;
    case Family::Moe::kDeepseek:
      j["n_routed_experts"] = moe.num_experts;
      j["num_experts_per_tok"] = moe.top_k;
      j["moe_intermediate_size"] = moe.expert_intermediate;
      j["norm_topk_prob"] = moe.norm_topk_prob;
      ZR_CHECK(
          moe.expert_intermediate > 0 && moe.shared_intermediate % moe.expert_intermediate == 0,
          "to_hf_json: the shared expert width (", moe.shared_intermediate,
          ") must be a multiple of moe_intermediate_size for a ", fam.model_type, " config");
      j["n_shared_experts"] = moe.shared_intermediate / moe.expert_intermediate;
      j["routed_scaling_factor"] = moe.routed_scaling_factor;
      j["n_group"] = moe.n_group;
      j["topk_group"] = moe.topk_group;
      j["first_k_dense_replace"] = moe.first_k_dense_replace;
      if (arch == Arch::kDeepseekV2) {
        j["topk_method"] = moe.n_group > 1 ? "group_limited_greedy" : "greedy";
      } else {
        j["scoring_func"] = moe.sigmoid_scoring ? "sigmoid" : "softmax";
        j["topk_method"] = moe.score_bias ? "noaux_tc" : "greedy";
        j["num_nextn_predict_layers"] = 0;
      }
      break;
  }
  json rp;
  rp["rope_theta"] = rope.theta;
  switch (rope.scaling) {
    case RopeConfig::Scaling::kDefault:
      rp["rope_type"] = "default";
      break;
    case RopeConfig::Scaling::kLinear:
      rp["rope_type"] = "linear";
      rp["factor"] = rope.factor;
      break;
    case RopeConfig::Scaling::kLlama3:
      rp["rope_type"] = "llama3";
      rp["factor"] = rope.factor;
      rp["original_max_position_embeddings"] = rope.original_max_position;
      rp["low_freq_factor"] = rope.low_freq_factor;
      rp["high_freq_factor"] = rope.high_freq_factor;
      break;
    case RopeConfig::Scaling::kYarn:
      rp["rope_type"] = "yarn";
      rp["factor"] = rope.factor;
      rp["original_max_position_embeddings"] = rope.original_max_position;
      rp["beta_fast"] = rope.beta_fast;
      rp["beta_slow"] = rope.beta_slow;
      if (rope.mscale != 0) rp["mscale"] = rope.mscale;
      if (rope.mscale_all_dim != 0) rp["mscale_all_dim"] = rope.mscale_all_dim;
      if (rope.attention_factor >= 0) rp["attention_factor"] = rope.attention_factor;
      rp["truncate"] = rope.truncate;
      break;
  }
  j["rope_parameters"] = rp;
  j["zerorl"] = {{"balance_bias_gamma", moe.balance_bias_gamma},
                 {"seq_aux_loss_alpha", moe.seq_aux_loss_alpha},
                 {"seed", seed}};
  return j.dump(2) + "\n";
}

std::string ModelConfig::summary() const {
  std::ostringstream os;
  os << arch_name(arch) << " L" << num_layers << " D" << hidden_size << " V" << vocab_size << " H"
     << attn.num_heads;
  if (attn.kind == AttentionConfig::Kind::kMla)
    os << " MLA(q_lora " << attn.q_lora_rank << ", kv_lora " << attn.kv_lora_rank << ")";
  else
    os << " GQA(kv " << attn.num_kv_heads << ", d " << attn.head_dim << ")";
  if (moe.num_experts > 0)
    os << " MoE(E" << moe.num_experts << " top" << moe.top_k << " F" << moe.expert_intermediate
       << " shared " << moe.shared_intermediate << ", " << num_moe_layers() << "/" << num_layers
       << " layers)";
  return os.str();
}

bool operator==(const ModelConfig& a, const ModelConfig& b) {
  // Compare through the canonical HF JSON: every field that defines the model.
  return a.to_hf_json() == b.to_hf_json() && a.arch == b.arch;
}

}  // namespace zerorl::model
