// paged_decode_attention_cuda() on CUDA tensors: the launch of
// paged_attention.cu on the current stream (inputs checked by the caller).
#include <c10/cuda/CUDAGuard.h>

#include "kernels/cuda_glue.h"
#include "kernels/paged_attention/paged_attention_impl.h"
#include "kernels/paged_attention/paged_attention_launch.h"

namespace zerorl::kernels::detail {

void paged_decode_attention_launch(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                   const at::Tensor& run_ptr, const at::Tensor& run_row0,
                                   const at::Tensor& run_len, const at::Tensor& out) {
  const c10::cuda::CUDAGuard guard(q.device());
  cuda::PagedDecodeArgs a{};
  a.q = q.data_ptr();
  a.q_row_stride = q.stride(0);
  a.q_head_stride = q.stride(1);
  a.k = k.data_ptr();
  a.k_head_stride = k.stride(0);
  a.k_pos_stride = k.stride(1);
  a.v = v.data_ptr();
  a.v_head_stride = v.stride(0);
  a.v_pos_stride = v.stride(1);
  a.out = out.data_ptr();
  a.out_row_stride = out.stride(0);
  a.out_head_stride = out.stride(1);
  a.B = q.size(0);
  a.Hq = q.size(1);
  a.Hkv = k.size(0);
  a.C = q.size(2);
  a.Cv = v.size(2);
  a.run_ptr = run_ptr.data_ptr<int64_t>();
  a.run_row0 = run_row0.data_ptr<int64_t>();
  a.run_len = run_len.data_ptr<int64_t>();
  cuda::paged_decode_attention(*dtype_code(q.scalar_type()), a, current_stream(q));
  check_launch("paged_decode_attention kernel");
}

}  // namespace zerorl::kernels::detail
