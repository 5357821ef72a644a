#include "trainer/routing_replay.h"

#include <ATen/ATen.h>

#include "core/error.h"
#include "trainer/metric_reducer.h"

namespace zerorl {

at::Tensor routing_tensor(const rollout::RolloutBatch& batch, int64_t M, int64_t K, int64_t T) {
  const int64_t B = static_cast<int64_t>(batch.samples.size());
  ZR_CHECK(M > 0 && K > 0, "routing replay: the policy has no MoE layers");
  // Padding routes to experts 0..K-1: any valid, distinct ids do.
  at::Tensor out = at::arange(K, at::kLong).view({1, 1, 1, K}).repeat({M, B, T, 1}).contiguous();
  int64_t* o = out.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    const auto& s = batch.samples[static_cast<size_t>(b)];
    const int64_t n = s.prompt_length() + s.completion_length() - 1;
    ZR_CHECK(static_cast<int64_t>(s.routing.size()) == n, "routing replay: sample ", b, " has ",
             s.routing.size(), " routing rows for ", n,
             " positions (was the rollout recorded with routing?)");
    ZR_CHECK(n <= T, "routing replay: sample ", b, " has ", n, " positions, the batch ", T);
    for (int64_t t = 0; t < n; ++t) {
      const auto& row = s.routing[static_cast<size_t>(t)];
      ZR_CHECK(static_cast<int64_t>(row.size()) == M * K, "routing replay: sample ", b,
               " position ", t, " records ", row.size(), " experts, expected ", M, " layers x ", K);
      for (int64_t l = 0; l < M; ++l)
        for (int64_t k = 0; k < K; ++k) o[((l * B + b) * T + t) * K + k] = row[l * K + k];
    }
  }
  return out;
}

std::vector<at::Tensor> replay_rows(const at::Tensor& routing_MBTK,
                                    const std::vector<int64_t>& rows, int64_t span) {
  const at::Tensor idx = at::tensor(rows, at::kLong).to(routing_MBTK.device());
  const at::Tensor sel = routing_MBTK.index_select(1, idx).narrow(2, 0, span);
  const int64_t K = routing_MBTK.size(3);
  std::vector<at::Tensor> out;
  for (int64_t l = 0; l < sel.size(0); ++l) out.push_back(sel[l].reshape({-1, K}));
  return out;
}

void RoutingMismatch::add_logprobs(const at::Tensor& behaviour_BT, const at::Tensor& learner_BT,
                                   const at::Tensor& mask_BT) {
  const at::Tensor mask = mask_BT.to(at::kDouble);
  const at::Tensor lr = (learner_BT.detach().to(at::kDouble) - behaviour_BT.to(at::kDouble)) * mask;
  logp_abs += lr.abs().sum().item<double>();
  logp_k3 += ((at::exp(lr) - 1 - lr) * mask).sum().item<double>();
  tokens += mask.sum().item<double>();
}

void RoutingMismatch::add_experts(const std::vector<at::Tensor>& learner,
                                  const std::vector<at::Tensor>& recorded,
                                  const at::Tensor& valid_N) {
  ZR_CHECK(learner.size() == recorded.size(), "routing mismatch: ", learner.size(),
           " layers recorded by the learner, ", recorded.size(), " by the rollout");
  for (size_t l = 0; l < learner.size(); ++l) {
    // Sets, not lists: the order within the top-k does not change the output.
    const at::Tensor a = std::get<0>(learner[l].sort(1));
    const at::Tensor b = std::get<0>(recorded[l].to(a.device()).sort(1));
    const at::Tensor valid = valid_N.to(a.device());
    expert_diff += ((a != b).any(1) & valid).sum().item<double>();
    expert_pairs += valid.sum().item<double>();
  }
}

void RoutingMismatch::report(MetricReducer& m) const {
  m.add_mean("rollout/logp_mismatch_abs", logp_abs, tokens);
  m.add_mean("rollout/logp_mismatch_k3", logp_k3, tokens);
  if (experts) m.add_mean("rollout/expert_mismatch", expert_diff, expert_pairs);
}

}  // namespace zerorl
