// Host-side helpers shared by the *_cuda.cpp glue files (compiled only with
// CUDA): dtype mapping and the current stream.
#pragma once

#include <optional>

#include <ATen/core/Tensor.h>
#include <cuda_runtime_api.h>

#include "kernels/dtype_code.h"

namespace zerorl::kernels::detail {

// The kernel dtype for t, or nullopt when the kernels are not instantiated for it.
inline std::optional<DtypeCode> dtype_code(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return DtypeCode::kFloat32;
    case at::kBFloat16:
      return DtypeCode::kBFloat16;
    case at::kHalf:
      return DtypeCode::kFloat16;
    default:
      return std::nullopt;
  }
}

// The current CUDA stream of t's device (c10's, so kernels order with ATen ops).
cudaStream_t current_stream(const at::Tensor& t);

// Throws zerorl::Error naming `what` if the last kernel launch failed.
void check_launch(const char* what);

}  // namespace zerorl::kernels::detail
