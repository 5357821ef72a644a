// Building blocks of CausalLM (internal to model/): Linear, RMSNorm, the
// dense SiLU-gated MLP, rotary embeddings.  Module and parameter names follow
// Hugging Face so that CausalLM::named_weights() gives HF names.
//
// Legend: N flattened tokens, D width, F hidden width, R rotary dim.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <cstdint>
#include <memory>
#include <utility>

#include "model/config.h"

namespace zerorl::model {

// y = x W^T (+ b).  The weight is cast to x's dtype when they differ (a
// checkpoint may keep some tensors in another dtype, e.g. fp32 routers).
class Linear : public torch::nn::Module {
 public:
  Linear(int64_t in, int64_t out, bool bias);
  at::Tensor forward(const at::Tensor& x) const;
  at::Tensor weight, bias;  // [out, in], [out] or undefined
};

// HF DeepseekV3RMSNorm / Qwen2MoeRMSNorm via kernels::rmsnorm.
class RMSNorm : public torch::nn::Module {
 public:
  RMSNorm(int64_t dim, double eps);
  at::Tensor forward(const at::Tensor& x) const;
  at::Tensor weight;
  double eps;
};

// down(silu(gate(x)) * up(x)); biases only for Llama's mlp_bias.
class Mlp : public torch::nn::Module {
 public:
  Mlp(int64_t dim, int64_t hidden, bool bias = false);
  at::Tensor forward(const at::Tensor& x) const;
  std::shared_ptr<Linear> gate_proj, up_proj, down_proj;
};

// Rotary embedding tables, computed as transformers does (inverse
// frequencies in fp32, with linear, yarn or llama3 scaling; cos/sin multiplied by
// the yarn attention factor).
class Rope {
 public:
  Rope(const RopeConfig& cfg, int64_t rotary_dim);
  // cos/sin [..., R/2] in `dtype` for int64 positions of any shape.
  std::pair<at::Tensor, at::Tensor> tables(const at::Tensor& positions, at::ScalarType dtype) const;
  // Rotate the last dimension (R) of x.  cos/sin must broadcast to
  // x[..., R/2].  Both layouts return the halves concatenated
  // (rotated-even | rotated-odd for interleaved), exactly as HF does; q and
  // k use the same layout, so dot products are those of the paper.
  at::Tensor apply(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) const;
  const at::Tensor& inv_freq() const { return inv_freq_; }

 private:
  RopeConfig cfg_;
  int64_t dim_;
  at::Tensor inv_freq_;  // fp32 [R/2], CPU
  double scale_;
};

// Fill every parameter of `m` as HF's _init_weights does: matrices and
// embeddings ~ N(0, std), biases 0, norm weights 1 (parameters named
// "...norm.weight" / "...layernorm.weight"), buffers 0.  Deterministic in seed.
void init_weights(torch::nn::Module& m, double std, uint64_t seed);

}  // namespace zerorl::model
