// rmsnorm(): validation and dispatch by device.
#include "kernels/rmsnorm/rmsnorm.h"

#include <cmath>

#include "core/error.h"
#include "kernels/rmsnorm/rmsnorm_impl.h"

namespace zerorl::kernels {

namespace {
bool is_float_dtype(at::ScalarType t) {
  return t == at::kFloat || t == at::kBFloat16 || t == at::kHalf || t == at::kDouble;
}
}  // namespace

at::Tensor rmsnorm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  ZR_CHECK(x.defined() && weight.defined(), "rmsnorm: x and weight must be defined");
  ZR_CHECK(x.dim() >= 1, "rmsnorm: x must have a last dimension, got a scalar");
  ZR_CHECK(weight.dim() == 1 && weight.size(0) == x.size(-1),
           "rmsnorm: weight must be [D=", x.size(-1), "], got ", weight.sizes());
  ZR_CHECK(is_float_dtype(x.scalar_type()) && is_float_dtype(weight.scalar_type()), "rmsnorm: x (",
           x.scalar_type(), ") and weight (", weight.scalar_type(), ") must be float tensors");
  ZR_CHECK(x.device() == weight.device(), "rmsnorm: x is on ", x.device(), " but weight on ",
           weight.device());
  ZR_CHECK(std::isfinite(eps) && eps >= 0, "rmsnorm: eps must be finite and >= 0, got ", eps);
  if (x.is_cuda()) {
#ifdef ZERORL_WITH_CUDA
    return detail::rmsnorm_cuda(x, weight, eps);
#else
    ZR_THROW("rmsnorm: got CUDA tensors but zerorl was built without CUDA (ZERORL_CUDA=OFF)");
#endif
  }
  ZR_CHECK(x.is_cpu(), "rmsnorm: unsupported device ", x.device());
  return detail::rmsnorm_ref(x, weight, eps);
}

}  // namespace zerorl::kernels
