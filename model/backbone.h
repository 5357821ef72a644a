// The transformer trunk (internal to model/): embed_tokens, decoder layers,
// final norm.  Registered under "model" in CausalLM, so names are HF's.
//
// Legend: B batch, T time, D width, N flattened tokens.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <memory>
#include <vector>

#include "model/attention.h"
#include "model/config.h"
#include "model/layers.h"
#include "model/moe_block.h"

namespace zerorl::model {

class Embedding : public torch::nn::Module {
 public:
  Embedding(int64_t num, int64_t dim) {
    weight = register_parameter("weight", at::empty({num, dim}));
  }
  at::Tensor weight;
};

class DecoderLayer : public torch::nn::Module {
 public:
  DecoderLayer(const ModelConfig& cfg, int64_t index, std::shared_ptr<const Rope> rope);
  // Dense MLP or MoE on flattened tokens; `call` is used by MoE layers only.
  at::Tensor mlp(const at::Tensor& x_ND, MoeCall& call);
  // The whole layer on [B,T,D]: x + attn(norm(x)), then + mlp(norm(.)).
  at::Tensor forward_full(const at::Tensor& x_BTD, const at::Tensor& cos, const at::Tensor& sin,
                          MoeCall& call);
  std::shared_ptr<RMSNorm> input_layernorm, post_attention_layernorm;
  std::shared_ptr<Attention> self_attn;
  // A parallel plan's swap of the MoE layer (model/moe_ep.h): `m` replaces
  // the module registered as "mlp" (same submodule names).
  void set_moe(std::shared_ptr<MoeLayer> m);
  std::shared_ptr<Mlp> dense;     // registered as "mlp" when the layer is dense
  std::shared_ptr<MoeLayer> moe;  // registered as "mlp" when the layer is MoE
};

class Backbone : public torch::nn::Module {
 public:
  explicit Backbone(const ModelConfig& cfg);
  // tokens_BT -> normed hidden [B,T,D].  calls: one MoeCall per MoE layer
  // (in layer order), carrying the requests and receiving the outputs.
  // checkpoint (with grad mode on): each decoder layer runs without autograd
  // and is recomputed, with autograd, during backward (see backbone.cpp).
  at::Tensor forward_full(const at::Tensor& tokens_BT, std::vector<MoeCall>& calls,
                          bool checkpoint = false);
  // tokens_N (new tokens, flattened valid) -> normed hidden [N,D]; appends K/V.
  // calls: one MoeCall per MoE layer (routing requests only).
  at::Tensor forward_cached(const at::Tensor& tokens_N, const CacheStep& step, KvCache& cache,
                            std::vector<MoeCall>& calls);
  const Rope& rope() const { return *rope_; }

  std::shared_ptr<Embedding> embed_tokens;
  std::vector<std::shared_ptr<DecoderLayer>> layers;
  std::shared_ptr<RMSNorm> norm;

 private:
  ModelConfig cfg_;
  std::shared_ptr<const Rope> rope_;
};

}  // namespace zerorl::model
