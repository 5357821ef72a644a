#include "kernels/cuda_glue.h"

#include <c10/cuda/CUDAStream.h>

#include "core/checks.h"

namespace zerorl::kernels::detail {

cudaStream_t current_stream(const at::Tensor& t) {
  return c10::cuda::getCurrentCUDAStream(t.device().index()).stream();
}

void check_launch(const char* what) {
  const cudaError_t rc = cudaGetLastError();
  if (rc != cudaSuccess)
    ::zerorl::detail::throw_call_failure("CUDA", what, cudaGetErrorString(rc), __FILE__, __LINE__);
}

}  // namespace zerorl::kernels::detail
