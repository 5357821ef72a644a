// Batch invariance on the CPU (issue 16: two rollout ranks each decode half
// of a batch; issue 15 item 7: same seed, same completions whatever the batch
// composition).  A token's logits must be the same bits whatever else is in
// the forward that computes them.  Two things in LibTorch's CPU kernels
// break that, measured with this build's torch 2.11 / MKL 2024.2 (AVX-512,
// one thread; docs/ARCHITECTURE.md):
//   * MKL's sgemm/dgemm compute an output row one way in a GEMM of 1 row (a
//     gemv), another with 2-3 rows and a third from 4 rows on; from 4 rows
//     on a row's bits do not depend on the row count (K, N 16..1536, up to
//     3000 rows).  A decode step has as many rows as running sequences and
//     an expert as many as the tokens routed to it.  with_min_rows pads a
//     GEMM's rows with zeros to kMinGemmRows and cuts the result back.
//   * ATen's vectorised sigmoid and silu give other bits in the loop's scalar
//     tail (the last numel mod vector-width elements) than in its vector
//     body, so an element's value depends on the tensor's size and its
//     place in it (a router's [N, E] scores, a gate's [N, 1]).  without_tail
//     applies such an op to the flattened tensor padded to a multiple of
//     kTailFreeElements elements, so every element goes through the vector
//     body.
//   * A GEMM with one output column (a gate's [N, 1]) gives a row bits that
//     depend on its place among the rows: row_invariant_linear computes it
//     as a row-wise product and sum.
// Attention is per sequence (a batched prefill runs attention once per
// sequence at its own shapes, model/attention.h CacheStep::per_row;
// model/paged_attention.cpp runs one GEMM per block), so its shapes do not
// depend on the batch.  On other devices these helpers call f
// unchanged (CUDA batch invariance is planned with the CUDA rollout, issue
// 15).  Tested bit for bit by Engine.CompletionsAndLogprobsDoNotDependOnTheBatch.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

namespace zerorl::kernels {

constexpr int64_t kMinGemmRows = 4;
constexpr int64_t kTailFreeElements = 64;

// f(x') cut to x's rows, where x' is x (rows along dim 0) with zero rows
// appended up to kMinGemmRows on the CPU; f must map rows to rows (dim 0).
template <class F>
at::Tensor with_min_rows(const at::Tensor& x, F&& f) {
  const int64_t n = x.size(0);
  if (!x.device().is_cpu() || n == 0 || n >= kMinGemmRows) return std::forward<F>(f)(x);
  std::vector<int64_t> pad_shape = x.sizes().vec();
  pad_shape[0] = kMinGemmRows - n;
  const at::Tensor padded = at::cat({x, at::zeros(pad_shape, x.options())}, 0);
  return std::forward<F>(f)(padded).narrow(0, 0, n);
}

// at::linear(x, w, b) over x's rows (all dims but the last), padded as above.
// A single output (w of one row: a gate) is a row-wise product and sum
// instead: MKL's GEMM with one output column gives a row bits that depend
// on its place among the rows (measured in the engine test).
inline at::Tensor row_invariant_linear(const at::Tensor& x, const at::Tensor& w,
                                       const at::Tensor& b = {}) {
  if (x.device().is_cpu() && w.dim() == 2 && w.size(0) == 1 && x.dim() >= 1) {
    at::Tensor y = (x * w.view({-1})).sum(-1, /*keepdim=*/true);
    return b.defined() ? y + b : y;
  }
  const int64_t rows = x.dim() == 0 ? 0 : x.numel() / std::max<int64_t>(1, x.size(-1));
  if (!x.device().is_cpu() || x.dim() == 0 || rows == 0 || rows >= kMinGemmRows)
    return at::linear(x, w, b);
  std::vector<int64_t> out = x.sizes().vec();
  out.back() = w.size(0);
  return with_min_rows(x.reshape({rows, x.size(-1)}),
                       [&](const at::Tensor& t) { return at::linear(t, w, b); })
      .reshape(out);
}

// f(x) for an elementwise f, with every element in the vector body of the
// CPU loop (x flattened and zero-padded to a multiple of kTailFreeElements).
template <class F>
at::Tensor without_tail(const at::Tensor& x, F&& f) {
  const int64_t n = x.numel();
  if (!x.device().is_cpu() || (n % kTailFreeElements == 0 && x.is_contiguous()))
    return std::forward<F>(f)(x);
  const int64_t m = (n + kTailFreeElements - 1) / kTailFreeElements * kTailFreeElements;
  const at::Tensor flat = at::cat({x.reshape({-1}), at::zeros({m - n}, x.options())});
  return std::forward<F>(f)(flat).narrow(0, 0, n).view(x.sizes());
}

inline at::Tensor invariant_sigmoid(const at::Tensor& x) {
  return without_tail(x, [](const at::Tensor& t) { return at::sigmoid(t); });
}

inline at::Tensor invariant_silu(const at::Tensor& x) {
  return without_tail(x, [](const at::Tensor& t) { return at::silu(t); });
}

}  // namespace zerorl::kernels
