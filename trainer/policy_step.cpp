#include "trainer/policy_step.h"

#include <ATen/ATen.h>

#include "core/comm.h"
#include "model/model.h"

namespace zerorl {

PolicyStepReport policy_step(Optimizer& opt, model::CausalLM& model, Comm& comm,
                             bool local_loss_finite) {
  PolicyStepReport r;
  r.optimizer = opt.step(local_loss_finite);
  at::Tensor load_LE = model.expert_load_LE();
  if (load_LE.numel() > 0) {
    comm.allreduce(load_LE);
    if (r.optimizer.applied) model.update_balance_bias(load_LE);
    const at::Tensor load = load_LE.to(at::kDouble);
    const at::Tensor mean_L = load.mean(1).clamp_min(1.0);
    r.load_imbalance_max = (load.amax(1) / mean_L).max().item<double>();
  }
  model.reset_expert_load();
  return r;
}

}  // namespace zerorl
