#include "model/layers.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "core/rng.h"
#include "kernels/batch_invariant.h"
#include "kernels/rmsnorm/rmsnorm.h"

namespace zerorl::model {

Linear::Linear(int64_t in, int64_t out, bool with_bias) {
  weight = register_parameter("weight", at::empty({out, in}));
  if (with_bias) bias = register_parameter("bias", at::zeros({out}));
}

at::Tensor Linear::forward(const at::Tensor& x) const {
  const at::Tensor& w =
      weight.scalar_type() == x.scalar_type() ? weight : weight.to(x.scalar_type());
  // Row-invariant (kernels/batch_invariant.h): a decode step's rows get the bits
  // they would get in any other batch.
  if (!bias.defined()) return kernels::row_invariant_linear(x, w);
  return kernels::row_invariant_linear(
      x, w, bias.scalar_type() == x.scalar_type() ? bias : bias.to(x.scalar_type()));
}

RMSNorm::RMSNorm(int64_t dim, double eps_) : eps(eps_) {
  weight = register_parameter("weight", at::ones({dim}));
}

at::Tensor RMSNorm::forward(const at::Tensor& x) const {
  // HF multiplies weight (its own dtype) by the normalised x cast back to x's
  // dtype; with matching dtypes that is what the kernel computes.
  const at::Tensor& w =
      weight.scalar_type() == x.scalar_type() ? weight : weight.to(x.scalar_type());
  return kernels::rmsnorm(x, w, eps);
}

Mlp::Mlp(int64_t dim, int64_t hidden, bool bias) {
  gate_proj = register_module("gate_proj", std::make_shared<Linear>(dim, hidden, bias));
  up_proj = register_module("up_proj", std::make_shared<Linear>(dim, hidden, bias));
  down_proj = register_module("down_proj", std::make_shared<Linear>(hidden, dim, bias));
}

at::Tensor Mlp::forward(const at::Tensor& x) const {
  return down_proj->forward(kernels::invariant_silu(gate_proj->forward(x)) * up_proj->forward(x));
}

// ---- RoPE --------------------------------------------------------------------

Rope::Rope(const RopeConfig& cfg, int64_t rotary_dim) : cfg_(cfg), dim_(rotary_dim) {
  // Same fp32 arithmetic as transformers' ROPE_INIT_FUNCTIONS.
  at::Tensor exponents = at::arange(0, dim_, 2, at::kFloat) / static_cast<double>(dim_);
  at::Tensor pos_freqs = at::pow(cfg.theta, exponents);
  at::Tensor inv = 1.0 / pos_freqs;
  switch (cfg.scaling) {
    case RopeConfig::Scaling::kDefault:
      break;
    case RopeConfig::Scaling::kLinear:
      inv = inv / cfg.factor;
      break;
    case RopeConfig::Scaling::kYarn: {
      auto correction_dim = [&](double rot) {
        return (dim_ * std::log(cfg.original_max_position / (rot * 2 * M_PI))) /
               (2 * std::log(cfg.theta));
      };
      double low = correction_dim(cfg.beta_fast), high = correction_dim(cfg.beta_slow);
      if (cfg.truncate) low = std::floor(low), high = std::ceil(high);
      low = std::max(low, 0.0);
      high = std::min(high, static_cast<double>(dim_ - 1));
      if (low == high) high += 0.001;
      at::Tensor ramp = at::clamp((at::arange(dim_ / 2, at::kFloat) - low) / (high - low), 0, 1);
      at::Tensor extra_factor = 1 - ramp;
      at::Tensor inv_inter = 1.0 / (cfg.factor * pos_freqs);
      inv = inv_inter * (1 - extra_factor) + inv * extra_factor;
      break;
    }
    case RopeConfig::Scaling::kLlama3: {
      // transformers' _compute_llama3_parameters: long wavelengths divided by
      // factor, short ones kept, a smooth blend in between.
      const double old_len = static_cast<double>(cfg.original_max_position);
      const double low_wavelen = old_len / cfg.low_freq_factor;
      const double high_wavelen = old_len / cfg.high_freq_factor;
      at::Tensor wavelen = 2 * M_PI / inv;
      at::Tensor scaled = at::where(wavelen > low_wavelen, inv / cfg.factor, inv);
      at::Tensor smooth =
          (old_len / wavelen - cfg.low_freq_factor) / (cfg.high_freq_factor - cfg.low_freq_factor);
      at::Tensor smoothed = (1 - smooth) * scaled / cfg.factor + smooth * scaled;
      at::Tensor medium = (wavelen >= high_wavelen).logical_and(wavelen <= low_wavelen);
      inv = at::where(medium, smoothed, scaled);
      break;
    }
  }
  inv_freq_ = inv.contiguous();
  scale_ = cfg.cos_sin_scale();
}

std::pair<at::Tensor, at::Tensor> Rope::tables(const at::Tensor& positions,
                                               at::ScalarType dtype) const {
  at::Tensor inv = inv_freq_.to(positions.device());
  at::Tensor freqs = positions.to(at::kFloat).unsqueeze(-1) * inv;  // [..., R/2]
  at::Tensor cos = freqs.cos(), sin = freqs.sin();
  if (scale_ != 1.0) cos = cos * scale_, sin = sin * scale_;
  return {cos.to(dtype), sin.to(dtype)};
}

at::Tensor Rope::apply(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) const {
  int64_t half = dim_ / 2;
  at::Tensor x1, x2;
  if (cfg_.layout == RopeConfig::Layout::kInterleaved) {
    x1 = x.slice(-1, 0, dim_, 2);
    x2 = x.slice(-1, 1, dim_, 2);
  } else {
    x1 = x.narrow(-1, 0, half);
    x2 = x.narrow(-1, half, half);
  }
  return at::cat({x1 * cos - x2 * sin, x2 * cos + x1 * sin}, -1);
}

// ---- init --------------------------------------------------------------------

static bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void init_weights(torch::nn::Module& m, double std, uint64_t seed) {
  at::NoGradGuard no_grad;
  auto gen =
      at::make_generator<at::CPUGeneratorImpl>(stream_seed(seed, 0, 0, 0, RngPurpose::kInit));
  for (auto& item : m.named_parameters(/*recurse=*/true)) {
    const std::string& name = item.key();
    at::Tensor& p = item.value();
    if (ends_with(name, "norm.weight")) {
      p.fill_(1.0);
    } else if (ends_with(name, ".bias") || p.dim() < 2) {
      p.zero_();
    } else {
      at::Tensor v = at::normal(0.0, std, p.sizes(), gen, at::TensorOptions().dtype(at::kFloat));
      p.copy_(v);
    }
  }
  for (auto& item : m.named_buffers(true)) item.value().zero_();
}

}  // namespace zerorl::model
