#include "rollout/batch_tensors.h"

#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>

#include <algorithm>

#include "core/error.h"

namespace zerorl::rollout {

PaddedRollout pad_rollout(const RolloutBatch& batch, int64_t pad_id) {
  ZR_CHECK(!batch.samples.empty(), "pad_rollout: empty batch");
  ZR_CHECK(pad_id >= 0, "pad_rollout: pad_id must be a valid token id, got ", pad_id);
  const int64_t B = static_cast<int64_t>(batch.samples.size());
  int64_t T = 0;
  for (const RolloutSample& s : batch.samples) {
    ZR_CHECK(s.prompt_length() >= 1 && s.completion_length() >= 1 &&
                 s.logp.size() == s.completion_tokens.size(),
             "pad_rollout: sample (prompt ", s.prompt_id, ", ", s.sample_index, ") is malformed");
    T = std::max(T, s.prompt_length() + s.completion_length() - 1);
  }
  const auto i64 = at::TensorOptions().dtype(at::kLong);
  PaddedRollout out;
  out.tokens_BT = at::full({B, T}, pad_id, i64);
  out.targets_BT = at::full({B, T}, pad_id, i64);
  out.valid_BT = at::zeros({B, T}, at::TensorOptions().dtype(at::kBool));
  out.completion_mask_BT = at::zeros({B, T}, at::TensorOptions().dtype(at::kBool));
  out.behaviour_logp_BT = at::zeros({B, T}, at::TensorOptions().dtype(at::kFloat));
  int64_t* tok = out.tokens_BT.data_ptr<int64_t>();
  int64_t* tgt = out.targets_BT.data_ptr<int64_t>();
  bool* valid = out.valid_BT.data_ptr<bool>();
  bool* mask = out.completion_mask_BT.data_ptr<bool>();
  float* logp = out.behaviour_logp_BT.data_ptr<float>();
  for (int64_t b = 0; b < B; ++b) {
    const RolloutSample& s = batch.samples[static_cast<size_t>(b)];
    const int64_t P = s.prompt_length(), n = P + s.completion_length();
    auto at_ = [&](int64_t i) {
      return i < P ? s.prompt_tokens[static_cast<size_t>(i)]
                   : s.completion_tokens[static_cast<size_t>(i - P)];
    };
    for (int64_t t = 0; t < n - 1; ++t) {
      const int64_t k = b * T + t;
      tok[k] = at_(t);
      tgt[k] = at_(t + 1);
      valid[k] = true;
      if (t >= P - 1) {
        mask[k] = true;
        logp[k] = static_cast<float>(s.logp[static_cast<size_t>(t - P + 1)]);
      }
    }
  }
  return out;
}

}  // namespace zerorl::rollout
