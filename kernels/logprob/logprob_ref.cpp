// CPU reference for chosen_logprob(): LibTorch ops, chunked over tokens, with a
// custom autograd function whose backward recomputes each chunk's logits.
//
// For one row with tempered logits z = h W^T / tau, lse = logsumexp(z),
// log p = z - lse, p = exp(log p):
//   logp      = z[target] - lse                    d/dz = onehot(target) - p
//   entropy H = -sum p log p                       d/dz = -p (log p + H)
// and dz/dh = W / tau, dz/dW = h / tau.  Peak extra memory is a few
// [chunk x V] buffers; nothing of size N x V exists at any time.
#include <algorithm>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "kernels/logprob/logprob_impl.h"

namespace zerorl::kernels::detail {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::ScalarType compute_dtype(at::ScalarType t) {
  return t == at::kDouble ? at::kDouble : at::kFloat;
}

// Tempered log-probabilities of one chunk: [n, V], computed in place.
at::Tensor chunk_log_probs(const at::Tensor& h_cD, const at::Tensor& w_VD, double temperature,
                           at::Tensor* lse_c) {
  at::Tensor z = at::mm(h_cD, w_VD.t());
  if (temperature != 1.0) z.div_(temperature);
  *lse_c = at::logsumexp(z, {1});
  z.sub_(lse_c->unsqueeze(1));
  return z;
}

struct LogprobRefFn : public torch::autograd::Function<LogprobRefFn> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& hidden_ND,
                               const at::Tensor& weight_VD, const at::Tensor& target_N,
                               int64_t chunk, bool with_entropy, double temperature) {
    const at::ScalarType cdt = compute_dtype(hidden_ND.scalar_type());
    const int64_t N = hidden_ND.size(0);
    const at::Tensor w_VD = weight_VD.to(cdt);
    const auto opts = hidden_ND.options().dtype(cdt);
    at::Tensor logp_N = at::empty({N}, opts);
    at::Tensor lse_N = at::empty({N}, opts);
    at::Tensor ent_N = with_entropy ? at::empty({N}, opts) : at::empty({0}, opts);
    for (int64_t s = 0; s < N; s += chunk) {
      const int64_t n = std::min(chunk, N - s);
      at::Tensor lse_c;
      at::Tensor logp_cV =
          chunk_log_probs(hidden_ND.narrow(0, s, n).to(cdt), w_VD, temperature, &lse_c);
      lse_N.narrow(0, s, n).copy_(lse_c);
      logp_N.narrow(0, s, n).copy_(
          logp_cV.gather(1, target_N.narrow(0, s, n).unsqueeze(1)).squeeze(1));
      if (with_entropy) {
        at::Tensor p_cV = logp_cV.exp();
        ent_N.narrow(0, s, n).copy_(-(p_cV.mul_(logp_cV)).sum(1));
      }
    }
    ctx->save_for_backward({hidden_ND, weight_VD, target_N, lse_N, ent_N});
    ctx->saved_data["chunk"] = chunk;
    ctx->saved_data["with_entropy"] = with_entropy;
    ctx->saved_data["temperature"] = temperature;
    if (with_entropy) return {logp_N, ent_N};
    return {logp_N};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& hidden_ND = saved[0];
    const at::Tensor& weight_VD = saved[1];
    const at::Tensor& target_N = saved[2];
    const at::Tensor& lse_N = saved[3];
    const at::Tensor& ent_N = saved[4];
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    const bool with_entropy = ctx->saved_data["with_entropy"].toBool();
    const double temperature = ctx->saved_data["temperature"].toDouble();
    const bool need_h = ctx->needs_input_grad(0), need_w = ctx->needs_input_grad(1);

    const at::ScalarType cdt = compute_dtype(hidden_ND.scalar_type());
    const int64_t N = hidden_ND.size(0);
    const at::Tensor w_VD = weight_VD.to(cdt);
    const at::Tensor g_logp_N =
        grad_out[0].defined() ? grad_out[0].to(cdt) : at::zeros({N}, lse_N.options());
    at::Tensor g_ent_N;
    if (with_entropy && grad_out.size() > 1 && grad_out[1].defined()) g_ent_N = grad_out[1].to(cdt);

    at::Tensor gh_ND = need_h ? at::empty({N, hidden_ND.size(1)}, lse_N.options()) : at::Tensor();
    at::Tensor gw_VD = need_w ? at::zeros_like(w_VD) : at::Tensor();
    for (int64_t s = 0; s < N && (need_h || need_w); s += chunk) {
      const int64_t n = std::min(chunk, N - s);
      const at::Tensor h_cD = hidden_ND.narrow(0, s, n).to(cdt);
      at::Tensor z_cV = at::mm(h_cD, w_VD.t());
      if (temperature != 1.0) z_cV.div_(temperature);
      at::Tensor logp_cV =
          z_cV.sub_(lse_N.narrow(0, s, n).unsqueeze(1));  // in place: z is no longer needed
      at::Tensor p_cV = logp_cV.exp();
      const at::Tensor g1_c = g_logp_N.narrow(0, s, n);
      // dL/dz = g1 (onehot - p) + g2 (-p (log p + H))
      at::Tensor dz_cV;
      if (g_ent_N.defined()) {
        const at::Tensor g2_c1 = g_ent_N.narrow(0, s, n).unsqueeze(1);
        at::Tensor t =
            logp_cV.add_(ent_N.narrow(0, s, n).unsqueeze(1)).mul_(g2_c1).add_(g1_c.unsqueeze(1));
        dz_cV = p_cV.mul_(t).neg_();
      } else {
        dz_cV = p_cV.mul_(g1_c.unsqueeze(1)).neg_();
      }
      dz_cV.scatter_add_(1, target_N.narrow(0, s, n).unsqueeze(1), g1_c.unsqueeze(1));
      if (temperature != 1.0) dz_cV.div_(temperature);
      if (need_h) {
        at::Tensor gh_cD = gh_ND.narrow(0, s, n);
        at::mm_out(gh_cD, dz_cV, w_VD);
      }
      if (need_w) gw_VD.addmm_(dz_cV.t(), h_cD);
    }
    return {need_h ? gh_ND.to(hidden_ND.scalar_type()) : at::Tensor(),
            need_w ? gw_VD.to(weight_VD.scalar_type()) : at::Tensor(),
            at::Tensor(),
            at::Tensor(),
            at::Tensor(),
            at::Tensor()};
  }
};

}  // namespace

LogprobResult chosen_logprob_ref(const at::Tensor& hidden_ND, const at::Tensor& weight_VD,
                                 const at::Tensor& target_N, const LogprobOptions& opt) {
  variable_list out = LogprobRefFn::apply(hidden_ND, weight_VD, target_N, opt.chunk_tokens,
                                          opt.with_entropy, opt.temperature);
  LogprobResult r;
  r.logp_N = out[0];
  if (opt.with_entropy) r.entropy_N = out[1];
  return r;
}

}  // namespace zerorl::kernels::detail
