// Internal: raw-pointer launchers of the rmsnorm CUDA kernels (rmsnorm.cu),
// called by rmsnorm_cuda.cpp.  x, w, y, gy, gx share one dtype; all row-major
// [rows, D], contiguous.  rstd is fp32 [rows].
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "kernels/dtype_code.h"

namespace zerorl::kernels::cuda {

void rmsnorm_forward(DtypeCode dt, const void* x, const void* w, void* y, float* rstd, int64_t rows,
                     int64_t D, float eps, cudaStream_t stream);
// gw_partial: fp32 [num_partials, D]; the caller sums it over dim 0 (a fixed
// order, so the weight gradient is deterministic).
void rmsnorm_backward(DtypeCode dt, const void* gy, const void* x, const void* w, const float* rstd,
                      void* gx, float* gw_partial, int num_partials, int64_t rows, int64_t D,
                      cudaStream_t stream);

}  // namespace zerorl::kernels::cuda
