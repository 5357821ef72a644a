#include "model/backbone.h"

#include <ATen/ATen.h>

#include <string>

#include "core/error.h"

namespace zerorl::model {

DecoderLayer::DecoderLayer(const ModelConfig& cfg, int64_t index,
                           std::shared_ptr<const Rope> rope) {
  if (cfg.attn.kind == AttentionConfig::Kind::kMla)
    self_attn = register_module("self_attn", std::make_shared<MlaAttention>(cfg, rope));
  else
    self_attn = register_module("self_attn", std::make_shared<GqaAttention>(cfg, rope));
  if (cfg.layer_is_moe(index))
    moe = register_module("mlp", std::make_shared<MoeBlock>(cfg));
  else
    dense =
        register_module("mlp", std::make_shared<Mlp>(cfg.hidden_size, cfg.moe.dense_intermediate));
  input_layernorm = register_module("input_layernorm",
                                    std::make_shared<RMSNorm>(cfg.hidden_size, cfg.rms_norm_eps));
  post_attention_layernorm = register_module(
      "post_attention_layernorm", std::make_shared<RMSNorm>(cfg.hidden_size, cfg.rms_norm_eps));
}

at::Tensor DecoderLayer::mlp(const at::Tensor& x, MoeCall& call) {
  return moe ? moe->forward(x, call) : dense->forward(x);
}

namespace {
// "layers" container: children named "0", "1", ... as HF's ModuleList.
class LayerList : public torch::nn::Module {};
}  // namespace

Backbone::Backbone(const ModelConfig& cfg) : cfg_(cfg) {
  rope_ = std::make_shared<const Rope>(cfg.rope, cfg.attn.rope_dim());
  embed_tokens =
      register_module("embed_tokens", std::make_shared<Embedding>(cfg.vocab_size, cfg.hidden_size));
  auto list = register_module("layers", std::make_shared<LayerList>());
  for (int64_t i = 0; i < cfg.num_layers; ++i)
    layers.push_back(
        list->register_module(std::to_string(i), std::make_shared<DecoderLayer>(cfg, i, rope_)));
  norm = register_module("norm", std::make_shared<RMSNorm>(cfg.hidden_size, cfg.rms_norm_eps));
}

at::Tensor Backbone::forward_full(const at::Tensor& tokens, std::vector<MoeCall>& calls) {
  int64_t B = tokens.size(0), T = tokens.size(1), D = cfg_.hidden_size;
  at::Tensor x = at::embedding(embed_tokens->weight, tokens);  // [B,T,D]
  at::Tensor pos = at::arange(T, tokens.options().dtype(at::kLong));
  auto [cos, sin] = rope_->tables(pos, x.scalar_type());
  size_t m = 0;
  for (auto& layer : layers) {
    x = x + layer->self_attn->forward_full(layer->input_layernorm->forward(x), cos, sin);
    at::Tensor h = layer->post_attention_layernorm->forward(x).reshape({B * T, D});
    if (layer->moe) {
      ZR_CHECK(m < calls.size(), "Backbone: missing MoeCall for an MoE layer");
      x = x + layer->mlp(h, calls[m++]).view({B, T, D});
    } else {
      MoeCall none;
      x = x + layer->mlp(h, none).view({B, T, D});
    }
  }
  return norm->forward(x);
}

at::Tensor Backbone::forward_cached(const at::Tensor& tokens_N, const CacheStep& step,
                                    KvCache& cache, std::vector<MoeCall>& calls) {
  at::Tensor x = at::embedding(embed_tokens->weight, tokens_N);  // [N,D]
  MoeCall none;
  size_t m = 0;
  for (size_t l = 0; l < layers.size(); ++l) {
    auto& layer = layers[l];
    x = x + layer->self_attn->forward_cached(layer->input_layernorm->forward(x), step, cache,
                                             int64_t(l));
    MoeCall* call = &none;
    if (layer->moe) {
      ZR_CHECK(m < calls.size(), "Backbone: missing MoeCall for an MoE layer");
      call = &calls[m++];
    }
    x = x + layer->mlp(layer->post_attention_layernorm->forward(x), *call);
  }
  return norm->forward(x);
}

}  // namespace zerorl::model
