"""Oracle for tests/kernels/router_hf_python_test.cpp: HF transformers' own
DeepseekV3 / Qwen2Moe router on given logits.

The router's linear layer gets an identity weight (hidden_size = E), so the
router logits are exactly the given ones.  Writes one line per (token, slot):
"t expert weight", slots sorted by expert id (HF's DeepseekV3 picks with
sorted=False, so slot order carries no meaning).
"""
import argparse

import numpy as np
import torch
from transformers import DeepseekV3Config, Qwen2MoeConfig
from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3TopkRouter
from transformers.models.qwen2_moe.modeling_qwen2_moe import Qwen2MoeTopKRouter

ap = argparse.ArgumentParser()
ap.add_argument("--kind", choices=["deepseek_v3", "qwen2_moe"], required=True)
ap.add_argument("--T", type=int, required=True)
ap.add_argument("--E", type=int, required=True)
ap.add_argument("--top_k", type=int, required=True)
ap.add_argument("--n_group", type=int, default=1)
ap.add_argument("--topk_group", type=int, default=1)
ap.add_argument("--norm", type=int, default=1)
ap.add_argument("--scale", type=float, default=1.0)
ap.add_argument("--logits", required=True)
ap.add_argument("--bias")
ap.add_argument("--out", required=True)
a = ap.parse_args()

logits = torch.from_numpy(np.fromfile(a.logits, dtype=np.float32).reshape(a.T, a.E))
with torch.no_grad():
    if a.kind == "deepseek_v3":
        cfg = DeepseekV3Config(hidden_size=a.E, n_routed_experts=a.E, num_experts_per_tok=a.top_k,
                               n_group=a.n_group, topk_group=a.topk_group, norm_topk_prob=bool(a.norm),
                               routed_scaling_factor=a.scale)
        router = DeepseekV3TopkRouter(cfg)
        router.weight.copy_(torch.eye(a.E))
        if a.bias:
            router.e_score_correction_bias.copy_(torch.from_numpy(np.fromfile(a.bias, dtype=np.float32)))
        _, weights, idx = router(logits)
    else:
        cfg = Qwen2MoeConfig(hidden_size=a.E, num_experts=a.E, num_experts_per_tok=a.top_k,
                             norm_topk_prob=bool(a.norm))
        router = Qwen2MoeTopKRouter(cfg)
        router.weight.copy_(torch.eye(a.E))
        _, weights, idx = router(logits)
        weights = weights * a.scale

order = idx.argsort(dim=-1)
idx, weights = idx.gather(1, order), weights.float().gather(1, order)
with open(a.out, "w") as f:
    for t in range(a.T):
        for k in range(a.top_k):
            f.write(f"{t} {int(idx[t, k])} {float(weights[t, k]):.9g}\n")
