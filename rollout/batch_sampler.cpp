#include "rollout/batch_sampler.h"

#include <ATen/ATen.h>

#include "core/error.h"
#include "rollout/token_text.h"

namespace zerorl::rollout {

namespace {

// Row-wise inverse CDF: the first position i with target_A[a] < cum_AN[a, i]
// (N when none).  cum is non-decreasing along each row.
at::Tensor first_above(const at::Tensor& cum_AN, const at::Tensor& target_A) {
  return at::searchsorted(cum_AN, target_A.unsqueeze(1), /*out_int32=*/false, /*right=*/true)
      .squeeze(1);
}

}  // namespace

BatchDraw sample_batch(const at::Tensor& logits_AV, const at::Tensor& u_A,
                       const SamplingParams& params) {
  ZR_CHECK(logits_AV.dim() == 2 && logits_AV.size(1) > 0,
           "sample_batch: logits must be [A, V] with V > 0, got ", logits_AV.sizes());
  const int64_t A = logits_AV.size(0), V = logits_AV.size(1);
  const at::Tensor x_AV = logits_AV.to(at::kDouble);
  auto [max_A, argmax_A] = x_AV.max(1);  // first maximum on ties; NaN propagates
  BatchDraw d;
  d.bad_A = at::isfinite(max_A).logical_not();
  const double T = params.logprob_temperature();
  const at::Tensor xT_AV = T == 1.0 ? x_AV : x_AV.div(T);
  const at::Tensor m_A = T == 1.0 ? max_A : max_A.div(T);
  at::Tensor z_AV = (xT_AV - m_A.unsqueeze(1)).exp_();
  const at::Tensor cum_AV = z_AV.cumsum(1);  // in id order, as the host's loop adds
  const at::Tensor sum_A = cum_AV.select(1, V - 1);
  const at::Tensor lse_A = m_A + sum_A.log();

  at::Tensor token_A;
  if (params.greedy()) {
    token_A = argmax_A;
  } else {
    ZR_CHECK(u_A.dim() == 1 && u_A.size(0) == A, "sample_batch: u must be [", A, "], got ",
             u_A.sizes());
    const at::Tensor u = u_A.to(x_AV.device(), at::kDouble);
    const bool truncating = (params.top_k > 0 && params.top_k < V) || params.top_p < 1.0;
    if (!truncating) {
      const at::Tensor pos_A = first_above(cum_AV, u * sum_A);
      // u * total rounded up to the full sum: the last id with mass.
      const at::Tensor last_A =
          (at::arange(V, x_AV.options().dtype(at::kLong)) * z_AV.gt(0)).amax(1);
      token_A = at::where(pos_A.lt(V), pos_A, last_A);
    } else {
      auto sorted = at::sort(z_AV, /*stable=*/true, /*dim=*/1, /*descending=*/true);
      const int64_t n = params.top_k > 0 && params.top_k < V ? params.top_k : V;
      const at::Tensor w_AN = std::get<0>(sorted).narrow(1, 0, n);
      const at::Tensor id_AN = std::get<1>(sorted).narrow(1, 0, n);
      const at::Tensor cum_AN = w_AN.cumsum(1);
      at::Tensor keep_A = at::full({A}, n, id_AN.options());
      at::Tensor total_A = cum_AN.select(1, n - 1);
      if (params.top_p < 1.0) {
        // The shortest prefix whose mass reaches top_p of the kept mass.
        keep_A = cum_AN.lt((total_A * params.top_p).unsqueeze(1)).sum(1).add_(1).clamp_max_(n);
        total_A = cum_AN.gather(1, (keep_A - 1).unsqueeze(1)).squeeze(1);
      }
      const at::Tensor pos_A = at::minimum(first_above(cum_AN, u * total_A), keep_A - 1);
      token_A = id_AN.gather(1, pos_A.unsqueeze(1)).squeeze(1);
    }
  }
  d.token_A = at::where(d.bad_A, at::zeros_like(token_A), token_A);
  d.logp_A = xT_AV.gather(1, d.token_A.unsqueeze(1)).squeeze(1) - lse_A;
  return d;
}

at::Tensor stop_flags(const BatchDraw& d, const at::Tensor& stop_ids_K,
                      const at::Tensor& candidate_V) {
  at::Tensor f = d.bad_A.to(at::kByte).mul_(static_cast<int64_t>(kBadLogits));
  if (stop_ids_K.defined() && stop_ids_K.numel() > 0)
    f.add_(at::isin(d.token_A, stop_ids_K).to(at::kByte).mul_(static_cast<int64_t>(kStopToken)));
  if (candidate_V.defined())
    f.add_(candidate_V.index_select(0, d.token_A)
               .to(at::kByte)
               .mul_(static_cast<int64_t>(kStopCandidate)));
  return f;
}

at::Tensor stop_candidates(const TokenText& text, const std::vector<std::string>& stops,
                           int64_t V) {
  at::Tensor c = at::zeros({V}, at::kBool);
  bool* p = c.data_ptr<bool>();
  const int64_t n = std::min(V, text.vocab_size());
  for (int64_t v = 0; v < n; ++v) {
    const std::string& b = text.bytes(v);
    for (const std::string& s : stops)
      if (!s.empty() && b.find(s.back()) != std::string::npos) p[v] = true;
  }
  return c;
}

}  // namespace zerorl::rollout
