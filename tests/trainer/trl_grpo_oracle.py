"""TRL oracle for tests/trainer/trl_oracle_test.cpp.

Runs TRL's own GRPOTrainer._compute_loss (trl 1.16, the function the trainer
calls every step) on given per-token tensors.  _compute_loss is a method of a
full trainer; building one needs a model, a dataset and accelerate, so the
method is called unbound on a small stand-in object that carries exactly the
attributes _compute_loss reads (loss_type, epsilon_low/high, beta, ...), with
_get_per_token_logps_and_entropies returning the test's log-probs and
entropies instead of running a model.  Everything after that call is TRL's
code path unchanged: ratio, clipping, k3 KL, aggregation, entropy bonus.

Usage: trl_grpo_oracle.py IN.json OUT.json
IN:  {"cases": [{"loss_type", "importance_sampling_level" (token|sequence),
                 "eps_low", "eps_high" (TRL's epsilon, epsilon_high), "beta", "entropy_coef",
                 "max_completion_length", "B", "T", "logp", "old_logp",
                 "ref_logp", "entropy", "mask" (flat, row-major), "adv",
                 "beh_logp", "is_mode" ("" | token_truncate | token_mask),
                 "is_clip_min", "is_clip_max"}]}
     plus "rewards" and "group_size" for TRL's advantage formula.
OUT: {"cases": [{"loss", "grad_logp", "grad_entropy"}], "advantages": [...]}
"""

import json
import sys
import types
from collections import defaultdict

import torch
from trl.trainer.grpo_trainer import GRPOTrainer
from trl.trainer.utils import nanstd


class _Accelerator:
    num_processes = 1
    sync_gradients = True

    def gather(self, x):
        return x

    def gather_for_metrics(self, x):
        return x

    def reduce(self, x, reduction="sum"):
        return x


def _stand_in(case, logp, entropy):
    s = types.SimpleNamespace()
    s.loss_type = case["loss_type"]
    s.epsilon_low = case["eps_low"]
    s.epsilon_high = case["eps_high"]
    s.beta = case["beta"]
    s.max_completion_length = case["max_completion_length"]
    s.top_entropy_quantile = 1.0
    s.off_policy_mask_threshold = None
    s.importance_sampling_level = case.get("importance_sampling_level", "token")
    # Behaviour weights reach _compute_loss only on TRL's vLLM path.
    s.use_vllm = bool(case.get("is_mode"))
    s.vllm_importance_sampling_correction = bool(case.get("is_mode"))
    s.current_gradient_accumulation_steps = 1
    s.entropy_coef = case["entropy_coef"]
    s.use_adaptive_entropy = False
    s._entropy_bonus_enabled = case["entropy_coef"] != 0.0
    s.aux_loss_enabled = False
    s.model = types.SimpleNamespace(training=True)
    s.accelerator = _Accelerator()
    s.args = types.SimpleNamespace(use_bias_correction_kl=False, delta=None, steps_per_generation=1)
    s._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
    s._get_per_token_logps_and_entropies = lambda *a, **k: (logp, entropy, None)
    return s


def trl_token_is_ratio(case, mask):
    # TRL 1.16 _generate_and_score_completions, vllm_importance_sampling_mode
    # token_truncate / token_mask (inline there, restated here): the ratio of
    # the recomputed old log-probs to the sampler's, per token.
    B, T = case["B"], case["T"]
    old = torch.tensor(case["old_logp"], dtype=torch.float64).view(B, T)
    beh = torch.tensor(case["beh_logp"], dtype=torch.float64).view(B, T)
    ratio = torch.exp(torch.nan_to_num((old - beh) * mask, nan=0.0))
    lo, hi = case["is_clip_min"], case["is_clip_max"]
    if case["is_mode"] == "token_truncate":
        return torch.clamp(ratio, min=lo, max=hi)
    assert case["is_mode"] == "token_mask", case["is_mode"]
    return ratio.masked_fill((ratio < lo) | (ratio > hi), value=0.0)


def run_case(case):
    B, T = case["B"], case["T"]
    dt = torch.float64
    logp = torch.tensor(case["logp"], dtype=dt).view(B, T).requires_grad_(True)
    entropy = torch.tensor(case["entropy"], dtype=dt).view(B, T).requires_grad_(True)
    mask = torch.tensor(case["mask"], dtype=torch.int64).view(B, T)
    inputs = {
        "prompt_ids": torch.zeros(B, 1, dtype=torch.int64),
        "prompt_mask": torch.ones(B, 1, dtype=torch.int64),
        "completion_ids": torch.zeros(B, T, dtype=torch.int64),
        "completion_mask": mask,
        "advantages": torch.tensor(case["adv"], dtype=dt),
        "old_per_token_logps": torch.tensor(case["old_logp"], dtype=dt).view(B, T),
        "ref_per_token_logps": torch.tensor(case["ref_logp"], dtype=dt).view(B, T),
        "num_items_in_batch": mask.sum(),
    }
    if case.get("is_mode"):
        inputs["importance_sampling_ratio"] = trl_token_is_ratio(case, mask)
    loss = GRPOTrainer._compute_loss(_stand_in(case, logp, entropy), None, inputs)
    loss.backward()
    ge = entropy.grad if entropy.grad is not None else torch.zeros_like(entropy)
    return {"loss": loss.item(), "grad_logp": logp.grad.flatten().tolist(),
            "grad_entropy": ge.flatten().tolist()}


def trl_advantages(rewards, group_size):
    # The scale_rewards="group" branch of GRPOTrainer._generate_and_score_completions,
    # which is inline there (not a function): mean and nanstd per group, + 1e-4.
    r = torch.tensor(rewards, dtype=torch.float64)
    mean = torch.nanmean(r.view(-1, group_size), dim=1).repeat_interleave(group_size, dim=0)
    std = nanstd(r.view(-1, group_size), dim=1).repeat_interleave(group_size, dim=0)
    return ((r - mean) / (std + 1e-4)).tolist()


def main():
    with open(sys.argv[1]) as f:
        req = json.load(f)
    out = {"cases": [run_case(c) for c in req["cases"]]}
    if "rewards" in req:
        out["advantages"] = trl_advantages(req["rewards"], req["group_size"])
    with open(sys.argv[2], "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
