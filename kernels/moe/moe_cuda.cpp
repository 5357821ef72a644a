// moe_route() / moe_experts() on CUDA tensors.
//
// Router: scores by ATen (softmax/sigmoid, differentiable), expert selection
// by route_select_kernel (moe.cu), weights gathered and renormalised by ATen
// so autograd reaches the router logits.
// Experts: permutation by count + stable place kernels; rows gathered by a
// kernel (autograd: a deterministic gather-sum back); the expert MLPs as
// at::_grouped_mm (CUTLASS grouped GEMM on sm90, bf16) or, where that does not
// apply, one cuBLAS GEMM per non-empty expert; the weighted combine by a
// kernel with its own backward.  Dtypes without kernels (fp64) run the ATen
// reference on the GPU.
#include <vector>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/csrc/autograd/custom_function.h>

#include "kernels/cuda_glue.h"
#include "kernels/moe/moe_impl.h"
#include "kernels/moe/moe_launch.h"

namespace zerorl::kernels::detail {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// x_PD = x_TD[src_slot_P / K]; backward sums each token's K rows.
struct GatherRowsFn : public torch::autograd::Function<GatherRowsFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x_TD,
                            const at::Tensor& src_slot_P, const at::Tensor& row_of_slot_TK) {
    const int64_t P = src_slot_P.size(0), K = row_of_slot_TK.size(1), D = x_TD.size(1);
    const at::Tensor x = x_TD.contiguous();
    at::Tensor x_PD = at::zeros({P, D}, x.options());
    cuda::moe_gather_rows(*dtype_code(x.scalar_type()), x.data_ptr(),
                          src_slot_P.data_ptr<int64_t>(), P, K, D, x_PD.data_ptr(),
                          current_stream(x));
    check_launch("moe_gather_rows kernel");
    ctx->save_for_backward({row_of_slot_TK});
    return x_PD;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    const at::Tensor row_of_slot_TK = ctx->get_saved_variables()[0];
    const at::Tensor g = grad_out[0].contiguous();
    const int64_t T = row_of_slot_TK.size(0), K = row_of_slot_TK.size(1), D = g.size(1);
    at::Tensor gx = at::empty({T, D}, g.options());
    cuda::moe_gather_rows_backward(*dtype_code(g.scalar_type()), g.data_ptr(),
                                   row_of_slot_TK.data_ptr<int64_t>(), T, K, D, gx.data_ptr(),
                                   current_stream(g));
    check_launch("moe_gather_rows_backward kernel");
    return {gx, at::Tensor(), at::Tensor()};
  }
};

// y_TD[t] = sum_k w_TK[t,k] out_PD[row_of_slot[t,k]].
struct CombineFn : public torch::autograd::Function<CombineFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& out_PD, const at::Tensor& w_TK,
                            const at::Tensor& row_of_slot_TK) {
    const at::Tensor out = out_PD.contiguous(), w = w_TK.contiguous();
    const int64_t T = row_of_slot_TK.size(0), K = row_of_slot_TK.size(1), D = out.size(1);
    at::Tensor y = at::empty({T, D}, out.options());
    cuda::moe_combine(*dtype_code(out.scalar_type()), out.data_ptr(), w.data_ptr<float>(),
                      row_of_slot_TK.data_ptr<int64_t>(), T, K, D, y.data_ptr(),
                      current_stream(out));
    check_launch("moe_combine kernel");
    ctx->save_for_backward({out, w, row_of_slot_TK});
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &out = saved[0], &w = saved[1], &row_of_slot_TK = saved[2];
    const at::Tensor gy = grad_out[0].to(out.scalar_type()).contiguous();
    const int64_t T = row_of_slot_TK.size(0), K = row_of_slot_TK.size(1), D = out.size(1);
    at::Tensor g_out = at::zeros_like(out);
    at::Tensor g_w = at::empty({T, K}, w.options());
    cuda::moe_combine_backward(*dtype_code(out.scalar_type()), out.data_ptr(), w.data_ptr<float>(),
                               row_of_slot_TK.data_ptr<int64_t>(), gy.data_ptr(), T, K, D,
                               g_out.data_ptr(), g_w.data_ptr<float>(), current_stream(out));
    check_launch("moe_combine_backward kernel");
    return {g_out, g_w, at::Tensor()};
  }
};

at::Tensor expert_mlp_loop(const at::Tensor& x_PD, const at::Tensor& counts_E,
                           const at::Tensor& w_gate_EFD, const at::Tensor& w_up_EFD,
                           const at::Tensor& w_down_EDF) {
  const at::Tensor counts = counts_E.cpu();  // the one device sync of this path
  const int64_t* count = counts.data_ptr<int64_t>();
  std::vector<at::Tensor> parts;
  int64_t row = 0;
  for (int64_t e = 0; e < counts.size(0); ++e) {
    if (count[e] == 0) continue;
    const at::Tensor xe = x_PD.narrow(0, row, count[e]);
    const at::Tensor a = at::silu(at::mm(xe, w_gate_EFD[e].t())) * at::mm(xe, w_up_EFD[e].t());
    parts.push_back(at::mm(a, w_down_EDF[e].t()));
    row += count[e];
  }
  if (row < x_PD.size(0))  // rows of dropped (out-of-range) slots: never read by the combine
    parts.push_back(at::zeros({x_PD.size(0) - row, w_down_EDF.size(1)}, x_PD.options()));
  return parts.empty() ? at::zeros({0, w_down_EDF.size(1)}, x_PD.options()) : at::cat(parts, 0);
}

at::Tensor expert_mlp_grouped(const at::Tensor& x_PD, const at::Tensor& offsets_E,
                              const at::Tensor& w_gate_EFD, const at::Tensor& w_up_EFD,
                              const at::Tensor& w_down_EDF) {
  const at::Tensor offs = offsets_E.to(at::kInt);
  const at::Tensor gate = at::_grouped_mm(x_PD, w_gate_EFD.transpose(1, 2), offs);
  const at::Tensor up = at::_grouped_mm(x_PD, w_up_EFD.transpose(1, 2), offs);
  return at::_grouped_mm(at::silu(gate) * up, w_down_EDF.transpose(1, 2), offs);
}

}  // namespace

ExpertPermutation moe_permute_cuda(const at::Tensor& topk_idx_TK, int64_t num_experts) {
  const c10::cuda::CUDAGuard guard(topk_idx_TK.device());
  const at::Tensor idx = topk_idx_TK.contiguous();
  const int64_t P = idx.numel();
  const cudaStream_t stream = current_stream(idx);
  ExpertPermutation p;
  p.tokens_per_expert_E = at::empty({num_experts}, idx.options());
  cuda::moe_count(idx.data_ptr<int64_t>(), P, num_experts,
                  p.tokens_per_expert_E.data_ptr<int64_t>(), stream);
  check_launch("moe_count kernel");
  p.offsets_E = at::cumsum(p.tokens_per_expert_E, 0);
  p.src_slot_P = at::empty({P}, idx.options());
  at::Tensor row_P = at::empty({P}, idx.options());
  cuda::moe_place(idx.data_ptr<int64_t>(), P, num_experts, p.offsets_E.data_ptr<int64_t>(),
                  p.src_slot_P.data_ptr<int64_t>(), row_P.data_ptr<int64_t>(), stream);
  check_launch("moe_place kernels");
  p.row_of_slot_TK = row_P.view(idx.sizes());
  return p;
}

RouterOutput moe_route_cuda(const at::Tensor& router_logits_TE, const at::Tensor& bias_E,
                            const RouterOptions& opt) {
  // The selection kernel keeps a warp's row in shared memory (2E floats per
  // warp, 4 warps) and one group per lane: beyond that, the ATen reference.
  // DeepSeek-V2's group-by-max selection (group_by_max) runs there too.
  if (opt.n_group > 32 || router_logits_TE.size(1) > 1024 || (opt.group_by_max && opt.n_group > 1))
    return moe_route_ref(router_logits_TE, bias_E, opt);
  const c10::cuda::CUDAGuard guard(router_logits_TE.device());
  const int64_t T = router_logits_TE.size(0), E = router_logits_TE.size(1);
  const at::Tensor logits_TE = router_logits_TE.to(at::kFloat);
  RouterOutput r;
  r.scores_TE = opt.sigmoid ? at::sigmoid(logits_TE) : at::softmax(logits_TE, 1);
  const at::Tensor choice = r.scores_TE.detach().contiguous();
  const at::Tensor bias = bias_E.defined() ? bias_E.to(at::kFloat).contiguous() : at::Tensor();
  r.topk_idx_TK = at::empty({T, opt.top_k}, logits_TE.options().dtype(at::kLong));
  cuda::moe_route_select(
      choice.data_ptr<float>(), bias.defined() ? bias.data_ptr<float>() : nullptr, T, E, opt.top_k,
      opt.n_group, opt.topk_group, r.topk_idx_TK.data_ptr<int64_t>(), current_stream(choice));
  check_launch("moe_route_select kernel");
  at::Tensor w_TK = r.scores_TE.gather(1, r.topk_idx_TK);
  if (opt.norm_topk_prob) w_TK = w_TK / (w_TK.sum(-1, true) + 1e-20);
  r.topk_weight_TK = w_TK * opt.routed_scaling_factor;
  return r;
}

bool moe_grouped_gemm_applies(const at::Tensor& x_TD, const at::Tensor& w_gate_EFD) {
  // CUTLASS grouped GEMM in ATen: bf16 on sm90+, 16-byte aligned rows.
  return x_TD.scalar_type() == at::kBFloat16 && x_TD.size(1) % 8 == 0 &&
         w_gate_EFD.size(1) % 8 == 0 &&
         at::cuda::getDeviceProperties(x_TD.device().index())->major >= 9;
}

MoeResult moe_experts_cuda(const at::Tensor& x_TD, const at::Tensor& topk_idx_TK,
                           const at::Tensor& topk_weight_TK, const at::Tensor& w_gate_EFD,
                           const at::Tensor& w_up_EFD, const at::Tensor& w_down_EDF,
                           bool grouped_gemm) {
  if (!dtype_code(x_TD.scalar_type()))
    return moe_experts_ref(x_TD, topk_idx_TK, topk_weight_TK, w_gate_EFD, w_up_EFD, w_down_EDF);
  const c10::cuda::CUDAGuard guard(x_TD.device());
  const int64_t E = w_gate_EFD.size(0);
  const ExpertPermutation perm = moe_permute_cuda(topk_idx_TK, E);
  const at::Tensor x_PD = GatherRowsFn::apply(x_TD, perm.src_slot_P, perm.row_of_slot_TK);
  const at::Tensor out_PD =
      grouped_gemm
          ? expert_mlp_grouped(x_PD, perm.offsets_E, w_gate_EFD, w_up_EFD, w_down_EDF)
          : expert_mlp_loop(x_PD, perm.tokens_per_expert_E, w_gate_EFD, w_up_EFD, w_down_EDF);
  MoeResult r;
  r.y_TD = CombineFn::apply(out_PD, topk_weight_TK.to(at::kFloat), perm.row_of_slot_TK);
  r.tokens_per_expert_E = perm.tokens_per_expert_E;
  return r;
}

}  // namespace zerorl::kernels::detail
