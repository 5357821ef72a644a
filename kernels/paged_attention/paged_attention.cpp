// paged_decode_attention_cuda(): argument checks and dispatch.
#include "kernels/paged_attention/paged_attention.h"

#include "core/error.h"
#include "kernels/paged_attention/paged_attention_impl.h"

namespace zerorl::kernels {

void check_paged_decode_args(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                             const at::Tensor& run_ptr, const at::Tensor& run_row0,
                             const at::Tensor& run_len, const at::Tensor& out) {
  const char* f = "paged_decode_attention_cuda: ";
  ZR_CHECK(q.defined() && k.defined() && v.defined() && out.defined() && run_ptr.defined() &&
               run_row0.defined() && run_len.defined(),
           f, "every tensor must be defined");
  ZR_CHECK(q.dim() == 3, f, "q must be [B, Hq, C], got ", q.sizes());
  ZR_CHECK(k.dim() == 3, f, "k must be [Hkv, P, C], got ", k.sizes());
  ZR_CHECK(v.dim() == 3, f, "v must be [Hkv, P, Cv], got ", v.sizes());
  ZR_CHECK(out.dim() == 3, f, "out must be [B, Hq, Cv], got ", out.sizes());
  const at::ScalarType dt = q.scalar_type();
  ZR_CHECK(dt == at::kFloat || dt == at::kBFloat16, f, "q must be fp32 or bf16, got ", dt);
  ZR_CHECK(k.scalar_type() == dt && v.scalar_type() == dt && out.scalar_type() == dt, f, "q (", dt,
           "), k (", k.scalar_type(), "), v (", v.scalar_type(), ") and out (", out.scalar_type(),
           ") must share one dtype");
  const int64_t B = q.size(0), Hq = q.size(1), C = q.size(2), Hkv = k.size(0), Cv = v.size(2);
  ZR_CHECK(k.size(2) == C, f, "k has ", k.size(2), " channels, q ", C);
  ZR_CHECK(v.size(0) == Hkv && v.size(1) == k.size(1), f, "v ", v.sizes(), " does not match k ",
           k.sizes(), " in kv heads and pool rows");
  ZR_CHECK(Hkv >= 1 && Hq % Hkv == 0, f, Hq, " query heads are not a multiple of ", Hkv,
           " kv heads");
  ZR_CHECK(out.size(0) == B && out.size(1) == Hq && out.size(2) == Cv, f, "out must be [", B, ", ",
           Hq, ", ", Cv, "], got ", out.sizes());
  ZR_CHECK(B <= 65535, f, B, " rows exceed the grid limit of 65535");
  ZR_CHECK(Cv <= 1024, f, "Cv = ", Cv, " exceeds the kernel's 1024 output channels");
  ZR_CHECK(C <= 8192, f, "C = ", C, " exceeds the kernel's 8192 query channels");
  ZR_CHECK(q.stride(2) == 1 && k.stride(2) == 1 && v.stride(2) == 1 && out.stride(2) == 1, f,
           "q, k, v and out need unit stride in their last dimension");
  for (const at::Tensor* t : {&run_ptr, &run_row0, &run_len})
    ZR_CHECK(t->dim() == 1 && t->scalar_type() == at::kLong && t->is_contiguous(), f,
             "run_ptr, run_row0 and run_len must be contiguous 1-d int64, got ", t->sizes(), " ",
             t->scalar_type());
  ZR_CHECK(run_ptr.size(0) == B + 1, f, "run_ptr must have B + 1 = ", B + 1, " entries, got ",
           run_ptr.size(0));
  ZR_CHECK(run_row0.size(0) == run_len.size(0), f, "run_row0 has ", run_row0.size(0),
           " runs, run_len ", run_len.size(0));
  const at::Device dev = q.device();
  for (const at::Tensor* t : {&k, &v, &out, &run_ptr, &run_row0, &run_len})
    ZR_CHECK(t->device() == dev, f, "all tensors must be on ", dev, ", one is on ", t->device());
}

void paged_decode_attention_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                 const at::Tensor& run_ptr, const at::Tensor& run_row0,
                                 const at::Tensor& run_len, const at::Tensor& out) {
  check_paged_decode_args(q, k, v, run_ptr, run_row0, run_len, out);
  ZR_CHECK(q.is_cuda(), "paged_decode_attention_cuda: needs CUDA tensors, got ", q.device());
#ifdef ZERORL_WITH_CUDA
  detail::paged_decode_attention_launch(q, k, v, run_ptr, run_row0, run_len, out);
#else
  ZR_THROW("paged_decode_attention_cuda: zerorl was built without CUDA (ZERORL_CUDA=OFF)");
#endif
}

}  // namespace zerorl::kernels
