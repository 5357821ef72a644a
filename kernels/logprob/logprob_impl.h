// Internal to kernels/logprob: the two implementations behind chosen_logprob().
// Callers use kernels/logprob/logprob.h; tests call these to pin one path.
// Both assume the inputs were validated by chosen_logprob().
#pragma once

#include "kernels/logprob/logprob.h"

namespace zerorl::kernels::detail {

LogprobResult chosen_logprob_ref(const at::Tensor& hidden_ND, const at::Tensor& weight_VD,
                                 const at::Tensor& target_N, const LogprobOptions& opt);
#ifdef ZERORL_WITH_CUDA
LogprobResult chosen_logprob_cuda(const at::Tensor& hidden_ND, const at::Tensor& weight_VD,
                                  const at::Tensor& target_N, const LogprobOptions& opt);
#endif

}  // namespace zerorl::kernels::detail
