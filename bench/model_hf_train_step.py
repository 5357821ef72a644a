"""Peer figure for bench/model_train_step.cpp: the same `tiny` model
(model/tiny.yaml) as a Hugging Face DeepseekV3ForCausalLM, forward + backward of
the mean log-prob of random targets, B x T tokens, median of --steps after one
warm-up step.

usage: .venv/bin/python bench/model_hf_train_step.py [--B 8] [--T 128] [--steps 5] [--threads 0]
"""
import argparse
import resource
import statistics
import time

import torch
from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

ap = argparse.ArgumentParser()
ap.add_argument("--B", type=int, default=8)
ap.add_argument("--T", type=int, default=128)
ap.add_argument("--steps", type=int, default=5)
ap.add_argument("--threads", type=int, default=0)
a = ap.parse_args()
if a.threads:
    torch.set_num_threads(a.threads)
cfg = DeepseekV3Config(
    vocab_size=96, hidden_size=128, num_hidden_layers=4, max_position_embeddings=1024, rms_norm_eps=1e-6,
    num_attention_heads=4, num_key_value_heads=4, q_lora_rank=None, kv_lora_rank=64, qk_nope_head_dim=32,
    qk_rope_head_dim=16, v_head_dim=32, intermediate_size=512, first_k_dense_replace=1, n_routed_experts=8,
    num_experts_per_tok=2, moe_intermediate_size=128, n_shared_experts=1, norm_topk_prob=True,
    routed_scaling_factor=1.0, n_group=1, topk_group=1, rope_interleave=True, tie_word_embeddings=False,
    rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
m = DeepseekV3ForCausalLM(cfg)
m.train()
torch.manual_seed(0)
tok = torch.randint(0, 96, (a.B, a.T))
tgt = torch.randint(0, 96, (a.B, a.T))
secs, cpu = [], []
for s in range(a.steps + 1):
    t0, c0 = time.perf_counter(), time.process_time()
    m.zero_grad()
    logits = m(tok).logits
    logp = torch.log_softmax(logits.float(), -1).gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
    logp.mean().backward()
    if s > 0:
        secs.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
med = statistics.median(secs)
cmed = statistics.median(cpu)
print(f"HF transformers {__import__('transformers').__version__}, threads {torch.get_num_threads()}, "
      f"B={a.B} T={a.T}: forward+backward {med*1e3:.1f} ms/step wall, {a.B*a.T/med:.0f} tokens/s; "
      f"{cmed:.2f} CPU-s/step, {a.B*a.T/cmed:.0f} tokens per CPU-second, "
      f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024:.1f} MiB")
