// TEMPORARY (removed as each CUDA implementation lands): CUDA entry points that
// throw, so that CPU users of zr_kernels link while the CUDA side is written.
#include "core/error.h"
#include "kernels/logprob/logprob_impl.h"
#include "kernels/moe/moe_impl.h"
#include "kernels/rmsnorm/rmsnorm.h"

namespace zerorl::kernels::detail {
LogprobResult chosen_logprob_cuda(const at::Tensor&, const at::Tensor&, const at::Tensor&, const LogprobOptions&) {
  ZR_THROW("chosen_logprob: the CUDA kernel has not landed yet");
}
RouterOutput moe_route_cuda(const at::Tensor&, const at::Tensor&, const RouterOptions&) {
  ZR_THROW("moe_route: the CUDA kernel has not landed yet");
}
bool moe_grouped_gemm_applies(const at::Tensor&, const at::Tensor&) { return false; }
MoeResult moe_experts_cuda(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                           const at::Tensor&, const at::Tensor&, bool) {
  ZR_THROW("moe_experts: the CUDA kernel has not landed yet");
}
at::Tensor rmsnorm_cuda(const at::Tensor&, const at::Tensor&, double) {
  ZR_THROW("rmsnorm: the CUDA kernel has not landed yet");
}
}  // namespace zerorl::kernels::detail
