"""Reference fixtures for zerorl's model tests, made with Hugging Face transformers.

usage: make_hf_fixtures.py OUT_DIR

Creates tiny random checkpoints of every supported family (DeepseekV3, DeepseekV2
with and without q LoRA, Qwen2Moe, Qwen3Moe, Olmoe, dense Qwen2, Qwen3, Llama)
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
from transformers import (DeepseekV2Config, DeepseekV2ForCausalLM, DeepseekV3Config, DeepseekV3ForCausalLM,
                          LlamaConfig, LlamaForCausalLM, OlmoeConfig, OlmoeForCausalLM, Qwen2Config,
                          Qwen2ForCausalLM, Qwen2MoeConfig, Qwen2MoeForCausalLM, Qwen3Config, Qwen3ForCausalLM,
                          Qwen3MoeConfig, Qwen3MoeForCausalLM)

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
            elif n.endswith(".bias"):  # init leaves them 0: a dropped bias would go unseen
                p.normal_(0.0, 0.05)
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
        # An explicit all-ones mask: generate() would otherwise mask prompt
        # tokens equal to pad_token_id.
        out = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=NEW, do_sample=False,
                             eos_token_id=None, pad_token_id=0,
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

no_special = dict(bos_token_id=None, eos_token_id=None, pad_token_id=None)

# DeepSeek-V2: q LoRA, group-limited greedy routing (a group scores its best
# expert), routed scaling, a dense first layer, yarn with mscale.
make("deepseek_v2", DeepseekV2ForCausalLM(DeepseekV2Config(
    vocab_size=80, hidden_size=64, intermediate_size=96, moe_intermediate_size=32, num_hidden_layers=3,
    num_attention_heads=4, num_key_value_heads=4, n_shared_experts=1, n_routed_experts=8, kv_lora_rank=32,
    q_lora_rank=48, qk_rope_head_dim=8, v_head_dim=16, qk_nope_head_dim=16, topk_method="group_limited_greedy",
    n_group=4, topk_group=2, num_experts_per_tok=3, first_k_dense_replace=1, routed_scaling_factor=2.0,
    norm_topk_prob=False, max_position_embeddings=256, tie_word_embeddings=False,
    rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                     "original_max_position_embeddings": 64, "beta_fast": 32, "beta_slow": 1,
                     "mscale": 0.707, "mscale_all_dim": 0.707}, **no_special)))

# DeepSeek-V2-Lite's form: no q LoRA, greedy top-k over all experts, 2 shared experts.
make("deepseek_v2_lite", DeepseekV2ForCausalLM(DeepseekV2Config(
    vocab_size=72, hidden_size=48, intermediate_size=80, moe_intermediate_size=24, num_hidden_layers=3,
    num_attention_heads=2, num_key_value_heads=2, n_shared_experts=2, n_routed_experts=6, kv_lora_rank=24,
    q_lora_rank=None, qk_rope_head_dim=8, v_head_dim=12, qk_nope_head_dim=12, topk_method="greedy",
    num_experts_per_tok=2, first_k_dense_replace=1, routed_scaling_factor=1.0, norm_topk_prob=False,
    max_position_embeddings=256, tie_word_embeddings=False,
    rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, **no_special)))

# Qwen3-MoE: per-head q/k RMSNorm, head_dim != hidden/heads, no shared expert,
# normalised top-k, one dense layer.
make("qwen3_moe", Qwen3MoeForCausalLM(Qwen3MoeConfig(
    vocab_size=90, hidden_size=64, intermediate_size=112, num_hidden_layers=3, num_attention_heads=4,
    num_key_value_heads=2, head_dim=24, moe_intermediate_size=32, num_experts_per_tok=3, num_experts=8,
    norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[0], max_position_embeddings=256,
    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}, tie_word_embeddings=False,
    **no_special)))

# OLMoE: q/k RMSNorm over the whole projection (k narrower: 2 kv heads), every
# layer MoE with experts of width intermediate_size, top-k not renormalised.
make("olmoe", OlmoeForCausalLM(OlmoeConfig(
    vocab_size=88, hidden_size=64, intermediate_size=32, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, num_experts=8, num_experts_per_tok=3, norm_topk_prob=False, rms_norm_eps=1e-5,
    max_position_embeddings=256, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    tie_word_embeddings=False, clip_qkv=None, **no_special)))

# Dense Qwen2 (Qwen2.5): q/k/v biases, tied embeddings, GQA.
make("qwen2", Qwen2ForCausalLM(Qwen2Config(
    vocab_size=84, hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True,
    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}, **no_special)))

# Dense Qwen3: per-head q/k norm, head_dim 16 != 48/4, attention_bias on q/k/v/o.
make("qwen3", Qwen3ForCausalLM(Qwen3Config(
    vocab_size=84, hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, head_dim=16, attention_bias=True, max_position_embeddings=256,
    tie_word_embeddings=False, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    **no_special)))

# Llama (3.x): llama3 rope scaling, attention and MLP biases, tied embeddings.
make("llama", LlamaForCausalLM(LlamaConfig(
    vocab_size=76, hidden_size=48, intermediate_size=80, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, attention_bias=True, mlp_bias=True, max_position_embeddings=256,
    tie_word_embeddings=True,
    rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                     "high_freq_factor": 4.0, "original_max_position_embeddings": 32}, **no_special)))

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
