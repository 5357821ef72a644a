// chosen_logprob(): validation and dispatch by device.  The arithmetic lives in
// logprob_ref.cpp (CPU) and logprob_cuda.cpp + logprob.cu (CUDA).
#include "kernels/logprob/logprob.h"

#include <cmath>

#include <ATen/ATen.h>

#include "core/error.h"
#include "kernels/logprob/logprob_impl.h"

namespace zerorl::kernels {

namespace {
bool is_float_dtype(at::ScalarType t) {
  return t == at::kFloat || t == at::kBFloat16 || t == at::kHalf || t == at::kDouble;
}
}  // namespace

LogprobResult chosen_logprob(const at::Tensor& hidden_ND, const at::Tensor& weight_VD,
                             const at::Tensor& target_N, const LogprobOptions& opt) {
  ZR_CHECK(hidden_ND.defined() && weight_VD.defined() && target_N.defined(),
           "chosen_logprob: hidden_ND, weight_VD and target_N must all be defined");
  ZR_CHECK(hidden_ND.dim() == 2, "chosen_logprob: hidden_ND must be [N, D], got ",
           hidden_ND.sizes());
  ZR_CHECK(weight_VD.dim() == 2, "chosen_logprob: weight_VD must be [V, D], got ",
           weight_VD.sizes());
  ZR_CHECK(target_N.dim() == 1, "chosen_logprob: target_N must be [N], got ", target_N.sizes());
  ZR_CHECK(hidden_ND.size(1) == weight_VD.size(1), "chosen_logprob: hidden_ND ", hidden_ND.sizes(),
           " and weight_VD ", weight_VD.sizes(), " disagree on D");
  ZR_CHECK(target_N.size(0) == hidden_ND.size(0), "chosen_logprob: target_N ", target_N.sizes(),
           " and hidden_ND ", hidden_ND.sizes(), " disagree on N");
  ZR_CHECK(weight_VD.size(0) > 0, "chosen_logprob: weight_VD has an empty vocabulary");
  ZR_CHECK(is_float_dtype(hidden_ND.scalar_type()),
           "chosen_logprob: hidden_ND must be float32/bfloat16/float16/float64, got ",
           hidden_ND.scalar_type());
  ZR_CHECK(hidden_ND.scalar_type() == weight_VD.scalar_type(), "chosen_logprob: hidden_ND is ",
           hidden_ND.scalar_type(), " but weight_VD is ", weight_VD.scalar_type());
  ZR_CHECK(target_N.scalar_type() == at::kLong, "chosen_logprob: target_N must be int64, got ",
           target_N.scalar_type());
  ZR_CHECK(hidden_ND.device() == weight_VD.device() && hidden_ND.device() == target_N.device(),
           "chosen_logprob: tensors on different devices: hidden_ND ", hidden_ND.device(),
           ", weight_VD ", weight_VD.device(), ", target_N ", target_N.device());
  ZR_CHECK(opt.chunk_tokens > 0, "chosen_logprob: chunk_tokens must be > 0, got ",
           opt.chunk_tokens);
  ZR_CHECK(std::isfinite(opt.temperature) && opt.temperature > 0,
           "chosen_logprob: temperature must be finite and > 0, got ", opt.temperature);

  if (hidden_ND.is_cuda()) {
#ifdef ZERORL_WITH_CUDA
    return detail::chosen_logprob_cuda(hidden_ND, weight_VD, target_N, opt);
#else
    ZR_THROW(
        "chosen_logprob: got CUDA tensors but zerorl was built without CUDA (ZERORL_CUDA=OFF)");
#endif
  }
  ZR_CHECK(hidden_ND.is_cpu(), "chosen_logprob: unsupported device ", hidden_ND.device());
  if (target_N.numel() > 0) {
    const int64_t lo = target_N.min().item<int64_t>(), hi = target_N.max().item<int64_t>();
    ZR_CHECK(lo >= 0 && hi < weight_VD.size(0), "chosen_logprob: target_N holds ids in [", lo, ", ",
             hi, "] but the vocabulary is V=", weight_VD.size(0));
  }
  return detail::chosen_logprob_ref(hidden_ND, weight_VD, target_N, opt);
}

}  // namespace zerorl::kernels
