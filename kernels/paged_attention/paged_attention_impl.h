// Internal to kernels/paged_attention: the CUDA launch behind
// paged_decode_attention_cuda (paged_attention.h), after the checks.
#pragma once

#include "kernels/paged_attention/paged_attention.h"

namespace zerorl::kernels::detail {

#ifdef ZERORL_WITH_CUDA
void paged_decode_attention_launch(const at::Tensor& q_BHC, const at::Tensor& k_HPC,
                                   const at::Tensor& v_HPCv, const at::Tensor& run_ptr,
                                   const at::Tensor& run_row0, const at::Tensor& run_len,
                                   const at::Tensor& out_BHCv);
#endif

}  // namespace zerorl::kernels::detail
