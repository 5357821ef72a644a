// The element types the CUDA kernels are instantiated for, named without any
// torch header so that .cu files compile with nvcc alone.  Host glue
// (*_cuda.cpp) maps at::ScalarType to these; other dtypes take the reference
// path on the GPU (it is plain ATen and runs on CUDA tensors as well).
#pragma once

namespace zerorl::kernels {

enum class DtypeCode : int { kFloat32 = 0, kBFloat16 = 1, kFloat16 = 2 };

}  // namespace zerorl::kernels
