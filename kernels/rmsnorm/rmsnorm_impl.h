// Internal to kernels/rmsnorm: the two implementations behind rmsnorm().
// Callers use kernels/rmsnorm/rmsnorm.h; tests and benchmarks call these to
// pin one path.  Both assume the inputs were validated by rmsnorm().
#pragma once

#include "kernels/rmsnorm/rmsnorm.h"

namespace zerorl::kernels::detail {

at::Tensor rmsnorm_ref(const at::Tensor& x, const at::Tensor& weight, double eps);
#ifdef ZERORL_WITH_CUDA
at::Tensor rmsnorm_cuda(const at::Tensor& x, const at::Tensor& weight, double eps);
#endif

}  // namespace zerorl::kernels::detail
