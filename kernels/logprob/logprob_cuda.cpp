// chosen_logprob() on CUDA tensors: an autograd function that, chunk by chunk,
// computes the tempered logits with one cuBLAS GEMM (bf16/fp16 inputs on the
// tensor cores with fp32 accumulation and fp32 output; fp32 inputs in fp32),
// reduces them with the online log-sum-exp kernel of logprob.cu, and in
// backward recomputes them, forms dL/dz in the input dtype and applies two
// more GEMMs (dh = dz W, dW += dz^T h, the latter accumulated in fp32).
// Only one fp32 [chunk, V] logits buffer and one [chunk, V] gradient buffer
// exist at a time.  fp64 inputs run the ATen reference on the GPU.
#include <algorithm>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <cublas_v2.h>
#include <torch/csrc/autograd/custom_function.h>

#include "core/error.h"
#include "kernels/cuda_glue.h"
#include "kernels/logprob/logprob_impl.h"
#include "kernels/logprob/logprob_launch.h"

namespace zerorl::kernels::detail {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

#define ZR_CUBLAS_CHECK(call)                                                              \
  do {                                                                                     \
    const cublasStatus_t zr_st_ = (call);                                                  \
    if (zr_st_ != CUBLAS_STATUS_SUCCESS)                                                   \
      ::zerorl::detail::throw_call_failure("cuBLAS", #call, cublasGetStatusString(zr_st_), \
                                           __FILE__, __LINE__);                            \
  } while (0)

cudaDataType_t cublas_type(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return CUDA_R_32F;
    case at::kBFloat16:
      return CUDA_R_16BF;
    case at::kHalf:
      return CUDA_R_16F;
    default:
      ZR_THROW("chosen_logprob (CUDA): no cuBLAS type for ", t);
  }
}

// Row-major C[m, n] = alpha * op(A) op(B) + beta * C, expressed for
// column-major cuBLAS as C^T = op(B)^T op(A)^T.  A, B row-major with leading
// dimensions lda, ldb (their row lengths); trans_a means op(A) = A^T.
void gemm_rowmajor(cublasHandle_t h, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                   float alpha, const void* A, cudaDataType_t ta, int64_t lda, const void* B,
                   cudaDataType_t tb, int64_t ldb, float beta, void* C, cudaDataType_t tc,
                   int64_t ldc) {
  ZR_CUBLAS_CHECK(cublasGemmEx(h, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                               trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(n),
                               static_cast<int>(m), static_cast<int>(k), &alpha, B, tb,
                               static_cast<int>(ldb), A, ta, static_cast<int>(lda), &beta, C, tc,
                               static_cast<int>(ldc), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

// logits_cV = h_cD W_VD^T / temperature, fp32 out.
void chunk_logits(cublasHandle_t handle, const at::Tensor& h_cD, const at::Tensor& w_VD,
                  double temperature, at::Tensor& logits_cV) {
  const cudaDataType_t t = cublas_type(h_cD.scalar_type());
  const int64_t c = h_cD.size(0), D = h_cD.size(1), V = w_VD.size(0);
  gemm_rowmajor(handle, false, true, c, V, D, static_cast<float>(1.0 / temperature),
                h_cD.data_ptr(), t, D, w_VD.data_ptr(), t, D, 0.f, logits_cV.data_ptr(), CUDA_R_32F,
                V);
}

struct LogprobCudaFn : public torch::autograd::Function<LogprobCudaFn> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& hidden,
                               const at::Tensor& weight, const at::Tensor& target, int64_t chunk,
                               bool with_entropy, double temperature) {
    const c10::cuda::CUDAGuard guard(hidden.device());
    const at::Tensor h_ND = hidden.contiguous(), w_VD = weight.contiguous(),
                     tgt_N = target.contiguous();
    const int64_t N = h_ND.size(0), V = w_VD.size(0);
    const auto f32 = h_ND.options().dtype(at::kFloat);
    at::Tensor logp_N = at::empty({N}, f32), lse_N = at::empty({N}, f32);
    at::Tensor ent_N = at::empty({with_entropy ? N : 0}, f32);
    const int64_t c_max = std::min(chunk, std::max<int64_t>(N, 1));
    at::Tensor logits_cV = at::empty({c_max, V}, f32);
    cublasHandle_t handle = at::cuda::getCurrentCUDABlasHandle();
    const cudaStream_t stream = current_stream(h_ND);
    for (int64_t s = 0; s < N; s += chunk) {
      const int64_t n = std::min(chunk, N - s);
      at::Tensor z = logits_cV.narrow(0, 0, n);
      chunk_logits(handle, h_ND.narrow(0, s, n), w_VD, temperature, z);
      cuda::logprob_rows_forward(z.data_ptr<float>(), tgt_N.data_ptr<int64_t>() + s, n, V,
                                 logp_N.data_ptr<float>() + s, lse_N.data_ptr<float>() + s,
                                 with_entropy ? ent_N.data_ptr<float>() + s : nullptr, stream);
      check_launch("logprob_rows_forward kernel");
    }
    ctx->save_for_backward({h_ND, w_VD, tgt_N, lse_N, ent_N});
    ctx->saved_data["chunk"] = chunk;
    ctx->saved_data["with_entropy"] = with_entropy;
    ctx->saved_data["temperature"] = temperature;
    if (with_entropy) return {logp_N, ent_N};
    return {logp_N};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &h_ND = saved[0], &w_VD = saved[1], &tgt_N = saved[2], &lse_N = saved[3],
                     &ent_N = saved[4];
    const c10::cuda::CUDAGuard guard(h_ND.device());
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    const bool with_entropy = ctx->saved_data["with_entropy"].toBool();
    const double temperature = ctx->saved_data["temperature"].toDouble();
    const bool need_h = ctx->needs_input_grad(0), need_w = ctx->needs_input_grad(1);
    const int64_t N = h_ND.size(0), D = h_ND.size(1), V = w_VD.size(0);
    if (!(need_h || need_w) || N == 0)
      return {need_h ? at::zeros_like(h_ND) : at::Tensor(),
              need_w ? at::zeros_like(w_VD) : at::Tensor(),
              at::Tensor(),
              at::Tensor(),
              at::Tensor(),
              at::Tensor()};

    const auto f32 = h_ND.options().dtype(at::kFloat);
    const at::Tensor g1_N =
        grad_out[0].defined() ? grad_out[0].to(at::kFloat).contiguous() : at::zeros({N}, f32);
    at::Tensor g2_N;
    if (with_entropy && grad_out.size() > 1 && grad_out[1].defined())
      g2_N = grad_out[1].to(at::kFloat).contiguous();

    const at::ScalarType dt = h_ND.scalar_type();
    const cudaDataType_t t = cublas_type(dt);
    at::Tensor gh_ND = need_h ? at::empty_like(h_ND) : at::Tensor();
    // fp32 accumulation of dW across chunks (fp32 inputs accumulate in place).
    at::Tensor gw32_VD = need_w ? at::zeros({V, D}, f32) : at::Tensor();
    const int64_t c_max = std::min(chunk, N);
    at::Tensor logits_cV = at::empty({c_max, V}, f32);
    at::Tensor dz_cV = at::empty({c_max, V}, h_ND.options());
    cublasHandle_t handle = at::cuda::getCurrentCUDABlasHandle();
    const cudaStream_t stream = current_stream(h_ND);
    for (int64_t s = 0; s < N; s += chunk) {
      const int64_t n = std::min(chunk, N - s);
      const at::Tensor h_cD = h_ND.narrow(0, s, n);
      at::Tensor z = logits_cV.narrow(0, 0, n);
      chunk_logits(handle, h_cD, w_VD, temperature, z);
      cuda::logprob_rows_backward(
          z.data_ptr<float>(), tgt_N.data_ptr<int64_t>() + s, lse_N.data_ptr<float>() + s,
          g2_N.defined() ? ent_N.data_ptr<float>() + s : nullptr, g1_N.data_ptr<float>() + s,
          g2_N.defined() ? g2_N.data_ptr<float>() + s : nullptr,
          static_cast<float>(1.0 / temperature), n, V, *dtype_code(dt), dz_cV.data_ptr(), stream);
      check_launch("logprob_rows_backward kernel");
      // dh[n, D] = dz[n, V] W[V, D]
      if (need_h)
        gemm_rowmajor(handle, false, false, n, D, V, 1.f, dz_cV.data_ptr(), t, V, w_VD.data_ptr(),
                      t, D, 0.f, gh_ND.narrow(0, s, n).data_ptr(), t, D);
      // dW[V, D] += dz[n, V]^T h[n, D]
      if (need_w)
        gemm_rowmajor(handle, true, false, V, D, n, 1.f, dz_cV.data_ptr(), t, V, h_cD.data_ptr(), t,
                      D, 1.f, gw32_VD.data_ptr(), CUDA_R_32F, D);
    }
    return {gh_ND,        need_w ? gw32_VD.to(dt) : at::Tensor(),
            at::Tensor(), at::Tensor(),
            at::Tensor(), at::Tensor()};
  }
};

}  // namespace

LogprobResult chosen_logprob_cuda(const at::Tensor& hidden_ND, const at::Tensor& weight_VD,
                                  const at::Tensor& target_N, const LogprobOptions& opt) {
  if (!dtype_code(hidden_ND.scalar_type()))
    return chosen_logprob_ref(hidden_ND, weight_VD, target_N, opt);
  variable_list out = LogprobCudaFn::apply(hidden_ND, weight_VD, target_N, opt.chunk_tokens,
                                           opt.with_entropy, opt.temperature);
  LogprobResult r;
  r.logp_N = out[0];
  if (opt.with_entropy) r.entropy_N = out[1];
  return r;
}

}  // namespace zerorl::kernels::detail
