"""Reference fixtures for zerorl's model tests, made with Hugging Face transformers.

usage: make_hf_fixtures.py OUT_DIR

Creates tiny random DeepseekV3ForCausalLM / Qwen2MoeForCausalLM checkpoints
(save_pretrained: config.json + safetensors) and, for each, reference.safetensors
holding the numbers zerorl must reproduce:
  tokens [B,T] int64, logits [B,T,V] fp32,
  topk_L<i> [B*T,K] int64 (chosen experts of MoE layer i, sorted per row),
  prompt [P] int64, greedy [32] int64 (greedy continuation, no EOS stop).
Extra folders exercise the loader: a sharded bf16 checkpoint with an index
file, and a raw state_dict() in transformers' fused-expert layout.
One process writes everything (transformers' import dominates the cost).
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import DeepseekV3Config, DeepseekV3ForCausalLM, Qwen2MoeConfig, Qwen2MoeForCausalLM

OUT = sys.argv[1]
torch.manual_seed(1234)
B, T, P, NEW = 3, 12, 5, 32


def capture_routing(model):
    """Hooks on every router: record the chosen experts of each call."""
    seen = []
    for name, mod in model.named_modules():
        if name.endswith("mlp.gate") and hasattr(mod, "top_k"):
            layer = int(name.split(".")[2])
            mod.register_forward_hook(lambda m, i, o, layer=layer: seen.append((layer, o[2].detach().clone())))
    return seen


def make(name, model, perturb_bias=False):
    model.eval()
    # Spread the weights a little more than init (std 0.02 gives near-uniform
    # routing); larger values make expert choices and greedy tokens decisive.
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.08)
            elif "norm" in n:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
        if perturb_bias:
            for n, b in model.named_buffers():
                if n.endswith("e_score_correction_bias"):
                    b.copy_(0.05 * torch.randn_like(b))
    d = os.path.join(OUT, name)
    model.save_pretrained(d)
    V = model.config.vocab_size
    tokens = torch.randint(0, V, (B, T))
    seen = capture_routing(model)
    with torch.no_grad():
        logits = model(tokens).logits.float()
    ref = {"tokens": tokens, "logits": logits.contiguous()}
    for layer, idx in seen:
        ref[f"topk_L{layer}"] = idx.sort(dim=-1).values.contiguous()
    seen.clear()
    prompt = torch.randint(0, V, (1, P))
    with torch.no_grad():
        out = model.generate(prompt, max_new_tokens=NEW, do_sample=False, eos_token_id=None, pad_token_id=0,
                             min_new_tokens=NEW)
    ref["prompt"] = prompt[0].contiguous()
    ref["greedy"] = out[0, P:].contiguous()
    save_file(ref, os.path.join(d, "reference.safetensors.ref"))
    return model


ds_cfg = DeepseekV3Config(
    vocab_size=80, hidden_size=64, intermediate_size=96, moe_intermediate_size=32, num_hidden_layers=3,
    num_attention_heads=4, num_key_value_heads=4, n_shared_experts=1, n_routed_experts=8, kv_lora_rank=32,
    q_lora_rank=48, qk_rope_head_dim=8, v_head_dim=16, qk_nope_head_dim=16, n_group=4, topk_group=2,
    num_experts_per_tok=2, first_k_dense_replace=1, routed_scaling_factor=2.5, norm_topk_prob=True,
    max_position_embeddings=256, rope_interleave=True, tie_word_embeddings=False,
    rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                     "original_max_position_embeddings": 64, "beta_fast": 32, "beta_slow": 1,
                     "mscale": 1.0, "mscale_all_dim": 0.707},
    bos_token_id=None, eos_token_id=None, pad_token_id=None)
ds = make("deepseek_v3", DeepseekV3ForCausalLM(ds_cfg), perturb_bias=True)

lite_cfg = DeepseekV3Config(
    vocab_size=72, hidden_size=48, intermediate_size=80, moe_intermediate_size=24, num_hidden_layers=2,
    num_attention_heads=2, num_key_value_heads=2, n_shared_experts=2, n_routed_experts=6, kv_lora_rank=24,
    q_lora_rank=None, qk_rope_head_dim=8, v_head_dim=12, qk_nope_head_dim=12, n_group=1, topk_group=1,
    num_experts_per_tok=3, first_k_dense_replace=0, routed_scaling_factor=1.0, norm_topk_prob=False,
    max_position_embeddings=256, rope_interleave=False, tie_word_embeddings=True,
    rope_parameters={"rope_type": "linear", "rope_theta": 5000.0, "factor": 2.0},
    bos_token_id=None, eos_token_id=None, pad_token_id=None)
make("deepseek_lite", DeepseekV3ForCausalLM(lite_cfg))

qw_cfg = Qwen2MoeConfig(
    vocab_size=90, hidden_size=64, intermediate_size=112, num_hidden_layers=3, num_attention_heads=4,
    num_key_value_heads=2, moe_intermediate_size=32, shared_expert_intermediate_size=48, num_experts_per_tok=2,
    num_experts=6, norm_topk_prob=False, decoder_sparse_step=1, mlp_only_layers=[1], max_position_embeddings=256,
    rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, tie_word_embeddings=False,
    bos_token_id=None, eos_token_id=None, pad_token_id=None)
make("qwen2_moe", Qwen2MoeForCausalLM(qw_cfg))

# Loader variants of the DeepSeek model: the fused-expert layout of
# transformers' in-memory state_dict(), and a sharded bf16 checkpoint with an
# index file.
fused = os.path.join(OUT, "deepseek_v3_fused")
os.makedirs(fused, exist_ok=True)
save_file({k: v.contiguous() for k, v in ds.state_dict().items()}, os.path.join(fused, "model.safetensors"))
with open(os.path.join(OUT, "deepseek_v3", "config.json")) as f:
    cfg = json.load(f)
with open(os.path.join(fused, "config.json"), "w") as f:
    json.dump(cfg, f)
ds.to(torch.bfloat16).save_pretrained(os.path.join(OUT, "deepseek_v3_bf16_sharded"), max_shard_size="40KB")
print("ok")
