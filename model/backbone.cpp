#include "model/backbone.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

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
    dense = register_module(
        "mlp",
        std::make_shared<Mlp>(cfg.hidden_size, cfg.moe.dense_intermediate, cfg.moe.dense_bias));
  input_layernorm = register_module("input_layernorm",
                                    std::make_shared<RMSNorm>(cfg.hidden_size, cfg.rms_norm_eps));
  post_attention_layernorm = register_module(
      "post_attention_layernorm", std::make_shared<RMSNorm>(cfg.hidden_size, cfg.rms_norm_eps));
}

void DecoderLayer::set_moe(std::shared_ptr<MoeLayer> m) {
  ZR_CHECK(moe, "DecoderLayer::set_moe: the layer is dense");
  moe = replace_module("mlp", std::move(m));
}

at::Tensor DecoderLayer::mlp(const at::Tensor& x, MoeCall& call) {
  return moe ? moe->forward(x, call) : dense->forward(x);
}

at::Tensor DecoderLayer::forward_full(const at::Tensor& x, const at::Tensor& cos,
                                      const at::Tensor& sin, MoeCall& call) {
  const int64_t B = x.size(0), T = x.size(1), D = x.size(2);
  at::Tensor h = x + self_attn->forward_full(input_layernorm->forward(x), cos, sin);
  return h + mlp(post_attention_layernorm->forward(h).reshape({B * T, D}), call).view({B, T, D});
}

namespace {

// Activation checkpointing of one decoder layer (LibTorch has no
// torch.utils.checkpoint): forward runs the layer without autograd and keeps
// only its input; backward runs it again with autograd from that input and
// back-propagates through the recomputed graph right there (re-entrant
// autograd, as torch.utils.checkpoint's reentrant variant does), which
// accumulates the parameters' .grad and returns the input's gradient.
//   * Outputs: the layer's output and its balance-loss term (a zero scalar
//     when the layer has none), so the aux loss's gradient reaches the router.
//   * Determinism: the layer draws no random numbers (no dropout), and
//     routing depends only on the input, the weights and the balancing bias,
//     none of which change between forward and backward (the bias is updated
//     after the optimizer step): the recomputation routes every token to the
//     same experts (under routing replay, to the replayed ones, which the
//     layer keeps).  Expert-load counts and routing records are taken in the
//     forward only; the recomputation asks for neither.
struct CheckpointedLayer : public torch::autograd::Function<CheckpointedLayer> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx,
                                                const at::Tensor& x, const at::Tensor& cos,
                                                const at::Tensor& sin, int64_t layer_ptr,
                                                int64_t call_ptr) {
    auto* layer = reinterpret_cast<DecoderLayer*>(layer_ptr);
    auto* call = reinterpret_cast<MoeCall*>(call_ptr);
    ctx->save_for_backward({x, cos, sin});
    ctx->saved_data["layer"] = layer_ptr;
    ctx->saved_data["want_aux"] = call->want_aux;
    ctx->saved_data["batch"] = call->batch;
    if (call->valid_N.defined()) ctx->saved_data["valid_N"] = call->valid_N;
    if (call->replay_idx_NK.defined()) ctx->saved_data["replay_idx_NK"] = call->replay_idx_NK;
    at::Tensor y = layer->forward_full(x, cos, sin, *call);
    at::Tensor aux =
        call->aux_loss.defined()
            ? call->aux_loss
            : at::zeros(
                  {}, x.options().dtype(x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat));
    return {y, aux};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto* layer = reinterpret_cast<DecoderLayer*>(ctx->saved_data["layer"].toInt());
    MoeCall call;
    call.want_aux = ctx->saved_data["want_aux"].toBool();
    call.batch = ctx->saved_data["batch"].toInt();
    if (ctx->saved_data.count("valid_N")) call.valid_N = ctx->saved_data["valid_N"].toTensor();
    if (ctx->saved_data.count("replay_idx_NK"))
      call.replay_idx_NK = ctx->saved_data["replay_idx_NK"].toTensor();
    at::Tensor x = saved[0].detach().requires_grad_(true);
    {
      at::AutoGradMode enable(true);
      at::Tensor y = layer->forward_full(x, saved[1], saved[2], call);
      std::vector<at::Tensor> outs{y}, outs_grad{grads[0]};
      if (call.aux_loss.defined() && call.aux_loss.requires_grad() && grads[1].defined()) {
        outs.push_back(call.aux_loss);
        outs_grad.push_back(grads[1]);
      }
      torch::autograd::backward(outs, outs_grad);
    }
    return {x.grad(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

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

at::Tensor Backbone::forward_full(const at::Tensor& tokens, std::vector<MoeCall>& calls,
                                  bool checkpoint) {
  const int64_t T = tokens.size(1);
  at::Tensor x = at::embedding(embed_tokens->weight, tokens);  // [B,T,D]
  at::Tensor pos = at::arange(T, tokens.options().dtype(at::kLong));
  auto [cos, sin] = rope_->tables(pos, x.scalar_type());
  size_t m = 0;
  for (auto& layer : layers) {
    MoeCall none;
    MoeCall* call = &none;
    if (layer->moe) {
      ZR_CHECK(m < calls.size(), "Backbone: missing MoeCall for an MoE layer");
      call = &calls[m++];
    }
    if (checkpoint && at::GradMode::is_enabled() && x.requires_grad()) {
      auto out = CheckpointedLayer::apply(x, cos, sin, reinterpret_cast<int64_t>(layer.get()),
                                          reinterpret_cast<int64_t>(call));
      x = out[0];
      if (call->aux_loss.defined()) call->aux_loss = out[1];
    } else {
      x = layer->forward_full(x, cos, sin, *call);
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
