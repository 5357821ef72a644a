// CPU reference for rmsnorm(): HF DeepseekV3RMSNorm.forward, op for op.
#include <ATen/ATen.h>

#include "kernels/rmsnorm/rmsnorm_impl.h"

namespace zerorl::kernels::detail {

at::Tensor rmsnorm_ref(const at::Tensor& x, const at::Tensor& weight, double eps) {
  const at::ScalarType cdt = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor xf = x.to(cdt);
  const at::Tensor variance = xf.pow(2).mean(-1, /*keepdim=*/true);
  const at::Tensor normed = xf * at::rsqrt(variance + eps);
  return weight * normed.to(x.scalar_type());
}

}  // namespace zerorl::kernels::detail
