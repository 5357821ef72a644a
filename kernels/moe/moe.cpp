// moe_route() / moe_experts(): validation and dispatch by device.  The
// arithmetic lives in moe_ref.cpp (CPU) and moe_cuda.cpp + moe.cu (CUDA).
#include "kernels/moe/moe.h"

#include <cmath>

#include <ATen/ATen.h>

#include "core/error.h"
#include "kernels/moe/moe_impl.h"

namespace zerorl::kernels {

namespace {
bool is_float_dtype(at::ScalarType t) {
  return t == at::kFloat || t == at::kBFloat16 || t == at::kHalf || t == at::kDouble;
}
}  // namespace

RouterOutput moe_route(const at::Tensor& router_logits_TE, const at::Tensor& bias_E,
                       const RouterOptions& opt) {
  ZR_CHECK(
      router_logits_TE.defined() && router_logits_TE.dim() == 2,
      "moe_route: router_logits_TE must be [T, E]",
      router_logits_TE.defined() ? str_cat(", got ", router_logits_TE.sizes()) : std::string());
  ZR_CHECK(is_float_dtype(router_logits_TE.scalar_type()),
           "moe_route: router_logits_TE must be a float tensor, got ",
           router_logits_TE.scalar_type());
  const int64_t E = router_logits_TE.size(1);
  ZR_CHECK(E > 0, "moe_route: router_logits_TE has no experts");
  ZR_CHECK(opt.top_k >= 1 && opt.top_k <= E, "moe_route: top_k=", opt.top_k,
           " must be in [1, E=", E, "]");
  ZR_CHECK(opt.n_group >= 1 && E % opt.n_group == 0, "moe_route: n_group=", opt.n_group,
           " must be >= 1 and divide E=", E);
  ZR_CHECK(opt.topk_group >= 1 && opt.topk_group <= opt.n_group,
           "moe_route: topk_group=", opt.topk_group, " must be in [1, n_group=", opt.n_group, "]");
  if (opt.n_group > 1) {
    ZR_CHECK(E / opt.n_group >= 2,
             "moe_route: group-limited routing scores a group by its top-2 experts,"
             " so each group needs >= 2 experts (E=",
             E, ", n_group=", opt.n_group, ")");
    ZR_CHECK(opt.top_k <= opt.topk_group * (E / opt.n_group), "moe_route: top_k=", opt.top_k,
             " exceeds the experts in the topk_group=", opt.topk_group, " kept groups");
  }
  ZR_CHECK(std::isfinite(opt.routed_scaling_factor),
           "moe_route: routed_scaling_factor must be finite, got ", opt.routed_scaling_factor);
  if (bias_E.defined()) {
    ZR_CHECK(bias_E.dim() == 1 && bias_E.size(0) == E, "moe_route: bias_E must be [E=", E,
             "], got ", bias_E.sizes());
    ZR_CHECK(is_float_dtype(bias_E.scalar_type()), "moe_route: bias_E must be a float tensor, got ",
             bias_E.scalar_type());
    ZR_CHECK(bias_E.device() == router_logits_TE.device(), "moe_route: bias_E is on ",
             bias_E.device(), " but router_logits_TE on ", router_logits_TE.device());
  }
  if (router_logits_TE.is_cuda()) {
#ifdef ZERORL_WITH_CUDA
    return detail::moe_route_cuda(router_logits_TE, bias_E, opt);
#else
    ZR_THROW("moe_route: got CUDA tensors but zerorl was built without CUDA (ZERORL_CUDA=OFF)");
#endif
  }
  ZR_CHECK(router_logits_TE.is_cpu(), "moe_route: unsupported device ", router_logits_TE.device());
  return detail::moe_route_ref(router_logits_TE, bias_E, opt);
}

MoeResult moe_experts(const at::Tensor& x_TD, const at::Tensor& topk_idx_TK,
                      const at::Tensor& topk_weight_TK, const at::Tensor& w_gate_EFD,
                      const at::Tensor& w_up_EFD, const at::Tensor& w_down_EDF) {
  ZR_CHECK(x_TD.defined() && topk_idx_TK.defined() && topk_weight_TK.defined() &&
               w_gate_EFD.defined() && w_up_EFD.defined() && w_down_EDF.defined(),
           "moe_experts: all six tensors must be defined");
  ZR_CHECK(x_TD.dim() == 2, "moe_experts: x_TD must be [T, D], got ", x_TD.sizes());
  ZR_CHECK(topk_idx_TK.dim() == 2 && topk_idx_TK.size(0) == x_TD.size(0),
           "moe_experts: topk_idx_TK must be [T=", x_TD.size(0), ", K], got ", topk_idx_TK.sizes());
  ZR_CHECK(topk_idx_TK.scalar_type() == at::kLong, "moe_experts: topk_idx_TK must be int64, got ",
           topk_idx_TK.scalar_type());
  ZR_CHECK(topk_weight_TK.sizes() == topk_idx_TK.sizes(), "moe_experts: topk_weight_TK ",
           topk_weight_TK.sizes(), " must match topk_idx_TK ", topk_idx_TK.sizes());
  ZR_CHECK(is_float_dtype(topk_weight_TK.scalar_type()),
           "moe_experts: topk_weight_TK must be float, got ", topk_weight_TK.scalar_type());
  ZR_CHECK(w_gate_EFD.dim() == 3, "moe_experts: w_gate_EFD must be [E, F, D], got ",
           w_gate_EFD.sizes());
  const int64_t E = w_gate_EFD.size(0), F = w_gate_EFD.size(1), D = x_TD.size(1);
  ZR_CHECK(E > 0 && w_gate_EFD.size(2) == D, "moe_experts: w_gate_EFD ", w_gate_EFD.sizes(),
           " must be [E > 0, F, D=", D, "]");
  ZR_CHECK(w_up_EFD.sizes() == w_gate_EFD.sizes(), "moe_experts: w_up_EFD ", w_up_EFD.sizes(),
           " must match w_gate_EFD ", w_gate_EFD.sizes());
  ZR_CHECK(w_down_EDF.dim() == 3 && w_down_EDF.size(0) == E && w_down_EDF.size(1) == D &&
               w_down_EDF.size(2) == F,
           "moe_experts: w_down_EDF must be [E=", E, ", D=", D, ", F=", F, "], got ",
           w_down_EDF.sizes());
  ZR_CHECK(is_float_dtype(x_TD.scalar_type()), "moe_experts: x_TD must be float, got ",
           x_TD.scalar_type());
  for (const at::Tensor* w : {&w_gate_EFD, &w_up_EFD, &w_down_EDF})
    ZR_CHECK(w->scalar_type() == x_TD.scalar_type(), "moe_experts: expert weights are ",
             w->scalar_type(), " but x_TD is ", x_TD.scalar_type());
  for (const at::Tensor* t : {&topk_idx_TK, &topk_weight_TK, &w_gate_EFD, &w_up_EFD, &w_down_EDF})
    ZR_CHECK(t->device() == x_TD.device(), "moe_experts: tensors on different devices (x_TD on ",
             x_TD.device(), ", another on ", t->device(), ")");
  if (x_TD.is_cuda()) {
#ifdef ZERORL_WITH_CUDA
    return detail::moe_experts_cuda(x_TD, topk_idx_TK, topk_weight_TK, w_gate_EFD, w_up_EFD,
                                    w_down_EDF, detail::moe_grouped_gemm_applies(x_TD, w_gate_EFD));
#else
    ZR_THROW("moe_experts: got CUDA tensors but zerorl was built without CUDA (ZERORL_CUDA=OFF)");
#endif
  }
  ZR_CHECK(x_TD.is_cpu(), "moe_experts: unsupported device ", x_TD.device());
  if (topk_idx_TK.numel() > 0) {
    const int64_t lo = topk_idx_TK.min().item<int64_t>(), hi = topk_idx_TK.max().item<int64_t>();
    ZR_CHECK(lo >= 0 && hi < E, "moe_experts: topk_idx_TK holds expert ids in [", lo, ", ", hi,
             "] but there are E=", E, " experts");
  }
  return detail::moe_experts_ref(x_TD, topk_idx_TK, topk_weight_TK, w_gate_EFD, w_up_EFD,
                                 w_down_EDF);
}

bool moe_experts_sync_free(const at::Tensor& x_TD, const at::Tensor& w_gate_EFD) {
#ifdef ZERORL_WITH_CUDA
  return x_TD.is_cuda() && detail::moe_grouped_gemm_applies(x_TD, w_gate_EFD);
#else
  (void)x_TD;
  (void)w_gate_EFD;
  return false;
#endif
}

}  // namespace zerorl::kernels
